// Helpers shared by the harnesses: invariant checks that abort (so libFuzzer records a crash),
// the typed-error contract, a per-process scratch file for the APIs that take a path, and the
// largest single allocation made while a scope is alive (decompression bombs).
#pragma once

#include <fcntl.h>
#include <sanitizer/allocator_interface.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "core/error.h"

// Aborts with the failed condition when an invariant does not hold.
#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "\n==fuzz invariant== %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace mmserve::fuzz {

// A refused input must be an mmserve::Error of one of `allowed` codes (the edges map it to a
// status); anything else (std::bad_alloc, std::out_of_range, ...) would be an HTTP 500.
inline void expect_code(const Error& e, std::initializer_list<ErrorCode> allowed) {
  for (const ErrorCode code : allowed) {
    if (e.code() == code) return;
  }
  std::fprintf(stderr, "\n==fuzz invariant== unexpected error code %s: %s\n",
               error_code_name(e.code()), e.what());
  std::abort();
}

// A refusal names the request field (or CLI option) it is about.
inline void expect_field(const Error& e, const std::string& field) {
  if (e.field() == field) return;
  std::fprintf(stderr, "\n==fuzz invariant== error names field '%s', not '%s': %s\n",
               e.field().c_str(), field.c_str(), e.what());
  std::abort();
}

// One file per process under /dev/shm (or $TMPDIR), rewritten for every input: for the parsers
// that take a path.
class ScratchFile {
 public:
  explicit ScratchFile(const char* tag) {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
    path_ = std::string(dir != nullptr ? dir : "/tmp") + "/mmserve-fuzz-" + tag + "-" +
            std::to_string(getpid());
  }
  ~ScratchFile() { unlink(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& write(const uint8_t* data, size_t size) {
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0);
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd, data + done, size - done);
      FUZZ_CHECK(n > 0);
      done += static_cast<size_t>(n);
    }
    close(fd);
    return path_;
  }

 private:
  std::string path_;
};

// The largest single allocation (any thread) while an AllocationWatch is alive.
class AllocationWatch {
 public:
  AllocationWatch() {
    static const bool installed = [] {
      return __sanitizer_install_malloc_and_free_hooks(&on_malloc, &on_free) != 0;
    }();
    FUZZ_CHECK(installed);
    largest_.store(0);
    armed_.store(true);
  }
  ~AllocationWatch() { armed_.store(false); }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;

  size_t largest() const { return largest_.load(); }

 private:
  static void on_malloc(const volatile void*, size_t size) {
    if (!armed_.load(std::memory_order_relaxed)) return;
    size_t seen = largest_.load(std::memory_order_relaxed);
    while (size > seen && !largest_.compare_exchange_weak(seen, size)) {
    }
  }
  static void on_free(const volatile void*) {}

  static inline std::atomic<bool> armed_{false};
  static inline std::atomic<size_t> largest_{0};
};

}  // namespace mmserve::fuzz
