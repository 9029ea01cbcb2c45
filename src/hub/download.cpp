// Resumable, verified, atomic, locked downloads (see download.h).
#include "hub/download.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "core/error.h"
#include "hub/http_fetch.h"
#include "hub/progress.h"

namespace mmserve::hub {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void io_error(const std::string& what, const fs::path& path) {
  throw Error(ErrorCode::kInternal, what + " " + path.string() + ": " + std::strerror(errno));
}

class Sha256 {
 public:
  Sha256() { reset(); }
  void reset() {
    ctx_.reset(EVP_MD_CTX_new());
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
      throw Error(ErrorCode::kInternal, "OpenSSL: cannot start a SHA-256");
    }
  }
  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += digits[md[i] >> 4];
      out += digits[md[i] & 15];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_{nullptr, &EVP_MD_CTX_free};
};

// Feeds `length` bytes of an open file from its start into `sha`.
void hash_fd(int fd, uint64_t length, Sha256& sha, const fs::path& path) {
  std::string buf(1 << 20, '\0');
  uint64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), length - done),
                              static_cast<off_t>(done));
    if (n < 0) io_error("cannot read", path);
    if (n == 0) break;
    sha.update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
}

// An exclusive flock on NAME.lock, removed when released. The inode check makes removal safe:
// a waiter that wakes on a lock file already unlinked takes the lock again on the new one.
class FileLock {
 public:
  FileLock(const fs::path& path, const std::string& name, std::FILE* log) : path_(path) {
    bool said = false;
    while (true) {
      fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd_ < 0) io_error("cannot create the lock file", path);
      if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) io_error("cannot lock", path);
        if (!said) {
          std::fprintf(log, "another pull of %s is running: waiting for it (lock %s)\n",
                       name.c_str(), path.c_str());
          said = true;
        }
        if (::flock(fd_, LOCK_EX) != 0) io_error("cannot lock", path);
      }
      struct stat held {
      }, now{};
      if (::fstat(fd_, &held) == 0 && ::stat(path.c_str(), &now) == 0 &&
          held.st_ino == now.st_ino && held.st_dev == now.st_dev) {
        return;
      }
      ::close(fd_);  // the holder removed it while we waited: lock the new one
    }
  }
  ~FileLock() {
    ::unlink(path_.c_str());
    ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  fs::path path_;
  int fd_ = -1;
};

std::string unquote_etag(std::string v) {
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v;
}

bool is_sha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// One plain file name in `dir`. Control characters too: a NUL (a URL's "%00") would cut NAME,
// NAME.partial and NAME.lock to one path (the empty lock file then passes for the model).
void check_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.front() == '.' ||
      name.find_first_of("/\\") != std::string::npos ||
      std::ranges::any_of(name, [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    throw Error(ErrorCode::kInvalidInput, "refusing the file name '" + name + "'", "name");
  }
}

void write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      io_error("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string sha256_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) io_error("cannot open", path);
  Sha256 sha;
  struct stat st {};
  ::fstat(fd, &st);
  try {
    hash_fd(fd, static_cast<uint64_t>(st.st_size), sha, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return sha.hex();
}

DownloadResult download(const RemoteFile& file, const fs::path& dir, const HubSettings& settings,
                        const DownloadOptions& options) {
  check_name(file.name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw Error(ErrorCode::kInternal, "cannot create " + dir.string() + ": " + ec.message());
  }
  const fs::path final_path = dir / file.name;
  const fs::path partial_path = dir / (file.name + ".partial");
  std::FILE* log = options.log;
  FileLock lock(dir / (file.name + ".lock"), file.name, log);

  DownloadResult result;
  result.path = final_path;
  uint64_t expected_size = file.size;
  std::string expected_sha = file.sha256;

  // Present already? (The pull that held the lock before us may have just finished it.)
  if (fs::is_regular_file(final_path, ec)) {
    const uint64_t have = fs::file_size(final_path, ec);
    if (expected_size != 0 && have != expected_size) {
      std::fprintf(log, "%s is there with %llu bytes but the remote has %llu: downloading again\n",
                   final_path.c_str(), static_cast<unsigned long long>(have),
                   static_cast<unsigned long long>(expected_size));
    } else if (!expected_sha.empty()) {
      const std::string sha = sha256_file(final_path);
      if (sha == expected_sha) {
        result.bytes = have;
        result.sha256 = sha;
        std::fprintf(log, "%s: already present (size and sha256 match)\n", final_path.c_str());
        return result;
      }
      std::fprintf(log, "%s is there but its sha256 differs from the remote's: downloading again\n",
                   final_path.c_str());
    } else {
      result.bytes = have;
      std::fprintf(log, "%s: already present (%s; no remote hash to compare)\n", final_path.c_str(),
                   expected_size != 0 ? "size matches" : "remote size not known");
      return result;
    }
  }

  const int fd = ::open(partial_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) io_error("cannot create", partial_path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) io_error("cannot stat", partial_path);
  uint64_t have = static_cast<uint64_t>(st.st_size);
  if (expected_size != 0 && have > expected_size) {
    if (::ftruncate(fd, 0) != 0) io_error("cannot truncate", partial_path);
    have = 0;
  }
  Sha256 sha;
  if (have > 0) {
    hash_fd(fd, have, sha, partial_path);
    std::fprintf(log, "resuming %s from %s (%s)\n", file.name.c_str(), human_bytes(have).c_str(),
                 partial_path.c_str());
  }
  if (::lseek(fd, static_cast<off_t>(have), SEEK_SET) < 0) io_error("cannot seek", partial_path);

  auto fail_and_delete = [&](const std::string& message) {
    ::unlink(partial_path.c_str());
    throw Error(ErrorCode::kUnavailable, file.name + ": " + message + " (the partial download " +
                                             partial_path.string() + " was deleted)");
  };

  Progress progress(file.name, expected_size, have, log);
  int failures = 0;
  std::string last_error;
  while (expected_size == 0 || have < expected_size) {
    FetchRequest req;
    req.url = file.url;
    req.token = settings.token;
    req.token_origin = origin_of(settings.endpoint);
    req.stall_seconds = settings.stall_seconds;
    if (have > 0) req.range_from = have;
    const uint64_t had = have;
    bool first = true;
    std::string sink_error;
    req.sink = [&](std::string_view chunk, const FetchResponse& r) {
      if (first) {
        first = false;
        // The Hub says the LFS object's hash and size on its own answer (the first hop).
        if (const auto it = r.first_headers.find("x-linked-etag"); it != r.first_headers.end()) {
          if (const std::string v = unquote_etag(it->second);
              expected_sha.empty() && is_sha256(v)) {
            expected_sha = v;
          }
        }
        if (const auto it = r.first_headers.find("x-linked-size");
            expected_size == 0 && it != r.first_headers.end()) {
          expected_size = std::strtoull(it->second.c_str(), nullptr, 10);
        }
        if (r.status == 206) {
          const auto it = r.headers.find("content-range");
          const std::string want = "bytes " + std::to_string(have) + "-";
          if (it == r.headers.end() || it->second.rfind(want, 0) != 0) {
            sink_error = "the server answered a range request with another range (" +
                         (it == r.headers.end() ? std::string("none") : it->second) + ")";
            return false;
          }
          if (const size_t slash = it->second.find('/');
              expected_size == 0 && slash != std::string::npos) {
            expected_size = std::strtoull(it->second.c_str() + slash + 1, nullptr, 10);
          }
        } else if (have > 0) {  // 200: the whole file again
          progress.break_line();
          std::fprintf(log, "%s: the server ignored the range request: starting again from 0\n",
                       file.name.c_str());
          if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) < 0) {
            io_error("cannot truncate", partial_path);
          }
          have = 0;
          sha.reset();
          progress.restart(0);
        }
        if (expected_size == 0) {
          if (const auto it = r.headers.find("content-length"); it != r.headers.end()) {
            expected_size = have + std::strtoull(it->second.c_str(), nullptr, 10);
          }
        }
      }
      if (expected_size != 0 && have + chunk.size() > expected_size) {
        sink_error = "the server sent more than the " + std::to_string(expected_size) +
                     " bytes expected (wrong size)";
        return false;
      }
      write_all(fd, chunk, partial_path);
      sha.update(chunk.data(), chunk.size());
      have += chunk.size();
      progress.update(have);
      return true;
    };
    const FetchResponse r = fetch(req);
    if (!sink_error.empty()) {
      progress.break_line();
      fail_and_delete(sink_error);
    }
    if (r.status == 416 && have > 0) {
      // Range not satisfiable: the partial is at (or past) the end the server knows.
      if (expected_size != 0 && have == expected_size) break;
      if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) < 0) {
        io_error("cannot truncate", partial_path);
      }
      have = 0;
      sha.reset();
      last_error = "HTTP 416 for the partial's range";
    } else if (r.transport_error.empty() && r.status >= 200 && r.status < 300) {
      if (expected_size == 0) expected_size = have;
      break;
    } else if (r.transport_error.empty() && r.status != 408 && r.status != 429 && r.status < 500) {
      progress.break_line();
      throw_http_error(file.name + " (" + r.url + ")", r.status, "",
                       r.url.rfind(settings.endpoint, 0) == 0);
    } else {
      last_error =
          r.transport_error.empty() ? "HTTP " + std::to_string(r.status) : r.transport_error;
    }
    failures = have > had ? 1 : failures + 1;
    if (failures >= options.attempts) {
      progress.break_line();
      throw Error(ErrorCode::kUnavailable, file.name + ": the transfer kept failing (" +
                                               last_error + "); " + human_bytes(have) +
                                               " kept in " + partial_path.string() +
                                               ": run the same pull again to resume");
    }
    progress.break_line();
    std::fprintf(log, "%s: transfer interrupted at %s (%s): resuming\n", file.name.c_str(),
                 human_bytes(have).c_str(), last_error.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(250 << std::min(failures, 4)));
  }
  progress.finish(have);

  if (expected_size != 0 && have != expected_size) {
    fail_and_delete("size mismatch: expected " + std::to_string(expected_size) + " bytes, got " +
                    std::to_string(have));
  }
  const std::string actual = sha.hex();
  if (!expected_sha.empty() && actual != expected_sha) {
    fail_and_delete("sha256 mismatch: expected " + expected_sha + ", got " + actual);
  }
  if (::fsync(fd) != 0) io_error("cannot sync", partial_path);
  if (::rename(partial_path.c_str(), final_path.c_str()) != 0) {
    io_error("cannot rename " + partial_path.string() + " to", final_path);
  }
  sync_dir(dir);
  result.downloaded = true;
  result.bytes = have;
  result.sha256 = actual;
  std::fprintf(log, "%s: %s, sha256 %s%s\n", final_path.c_str(), human_bytes(have).c_str(),
               actual.c_str(), expected_sha.empty() ? " (no remote hash to check)" : " (verified)");
  return result;
}

}  // namespace mmserve::hub
