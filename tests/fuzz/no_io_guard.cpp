// Interposes the libc calls that reach files or the network (see no_io_guard.h). Outside a
// NoIoScope each forwards to the next definition (libc); inside one it aborts.
#include "no_io_guard.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace mmserve::fuzz {
namespace {

thread_local int t_scopes = 0;

// libFuzzer's own artifacts (the input that hit a malloc limit, a crash...) are written from
// inside the scope, by its malloc hook or signal handler: those names are let through.
bool is_fuzzer_artifact(const char* path) {
  if (path == nullptr) return false;
  const char* base = std::strrchr(path, '/');
  base = base != nullptr ? base + 1 : path;
  for (const char* prefix : {"oom-", "crash-", "timeout-", "leak-", "slow-unit-"}) {
    if (std::strncmp(base, prefix, std::strlen(prefix)) == 0) return true;
  }
  return false;
}

void check(const char* call, const char* what) {
  if (t_scopes == 0 || is_fuzzer_artifact(what)) return;
  std::fprintf(stderr,
               "\n==no_io_guard== %s(%s) inside a NoIoScope: the code under test reached "
               "for a file or the network\n",
               call, what != nullptr ? what : "");
  std::abort();
}

template <typename F>
F next(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "no_io_guard: no next definition of %s\n", name);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

}  // namespace

NoIoScope::NoIoScope() {
  ++t_scopes;
}
NoIoScope::~NoIoScope() {
  --t_scopes;
}

}  // namespace mmserve::fuzz

using mmserve::fuzz::check;
using mmserve::fuzz::mode_arg;
using mmserve::fuzz::next;

extern "C" {

int socket(int domain, int type, int protocol) {
  check("socket", "");
  static auto real = next<int (*)(int, int, int)>("socket");
  return real(domain, type, protocol);
}

int connect(int fd, const sockaddr* addr, socklen_t len) {
  check("connect", "");
  static auto real = next<int (*)(int, const sockaddr*, socklen_t)>("connect");
  return real(fd, addr, len);
}

int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  check("getaddrinfo", node);
  static auto real =
      next<int (*)(const char*, const char*, const addrinfo*, addrinfo**)>("getaddrinfo");
  return real(node, service, hints, res);
}

#define MMSERVE_INTERPOSE_OPEN(name)                                \
  int name(const char* path, int flags, ...) {                      \
    check(#name, path);                                             \
    va_list ap;                                                     \
    va_start(ap, flags);                                            \
    const mode_t mode = mode_arg(flags, ap);                        \
    va_end(ap);                                                     \
    static auto real = next<int (*)(const char*, int, ...)>(#name); \
    return real(path, flags, mode);                                 \
  }
#define MMSERVE_INTERPOSE_OPENAT(name)                                   \
  int name(int dir, const char* path, int flags, ...) {                  \
    check(#name, path);                                                  \
    va_list ap;                                                          \
    va_start(ap, flags);                                                 \
    const mode_t mode = mode_arg(flags, ap);                             \
    va_end(ap);                                                          \
    static auto real = next<int (*)(int, const char*, int, ...)>(#name); \
    return real(dir, path, flags, mode);                                 \
  }
MMSERVE_INTERPOSE_OPEN(open)
MMSERVE_INTERPOSE_OPEN(open64)
MMSERVE_INTERPOSE_OPENAT(openat)
MMSERVE_INTERPOSE_OPENAT(openat64)

FILE* fopen(const char* path, const char* mode) {
  check("fopen", path);
  static auto real = next<FILE* (*)(const char*, const char*)>("fopen");
  return real(path, mode);
}

FILE* fopen64(const char* path, const char* mode) {
  check("fopen64", path);
  static auto real = next<FILE* (*)(const char*, const char*)>("fopen64");
  return real(path, mode);
}

}  // extern "C"
