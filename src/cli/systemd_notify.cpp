#include "cli/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace mmserve::cli {
namespace {

// systemd reads one notification datagram into a buffer of PIPE_BUF (4096) bytes and ignores a
// longer one entirely; a status line stays well below that so READY=1 beside it is not lost.
constexpr std::size_t kMaxStatusBytes = 1024;

}  // namespace

bool systemd_notify(std::string_view state) noexcept {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || env[0] == '\0' || state.empty()) {
    return false;
  }
  const std::string_view name(env);
  if (name[0] != '/' && name[0] != '@') {
    return false;  // systemd 252 writes only these two forms
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (name.size() >= sizeof(address.sun_path)) {
    return false;  // a path needs its terminating NUL; an abstract name its leading one
  }
  std::memcpy(address.sun_path, name.data(), name.size());
  if (name[0] == '@') {
    address.sun_path[0] = '\0';  // abstract: the length below says where the name ends
  }
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                             (name[0] == '/' ? 1 : 0));

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  ssize_t sent = -1;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&address), length);
  } while (sent < 0 && errno == EINTR);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

std::string systemd_status(std::string_view text) {
  if (text.size() > kMaxStatusBytes) {
    std::size_t cut = kMaxStatusBytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) {
      --cut;  // text[cut] continues a character: cut before that character instead
    }
    text = text.substr(0, cut);
  }
  std::string line = "STATUS=";
  line.reserve(line.size() + text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    line += (u < 0x20U || u == 0x7FU) ? ' ' : c;
  }
  return line;
}

}  // namespace mmserve::cli
