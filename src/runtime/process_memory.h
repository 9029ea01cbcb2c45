// Keeping a long-running server's resident memory flat. A request's transient buffers (request
// bodies of megabytes, decoded images and audio, whisper states renewed after sampling) are
// freed, but glibc keeps freed pages in per-thread arenas, so under a mixed load RSS creeps up
// long after the working set stopped growing (seen in `make soak`). Two glibc tunings fix it:
// fewer arenas with large blocks always mapped, and handing free pages back to the kernel now
// and then. Thread-safe.
#pragma once

#include <chrono>

namespace mmserve::runtime {

// Caps glibc's malloc arenas and fixes the mmap threshold at 256 KiB (call once, before the
// worker threads start).
void limit_malloc_arenas(int arenas);

// Returns freed heap pages to the kernel (malloc_trim), at most once per `interval` however
// often it is called; cheap when it is not time yet.
void release_free_memory(std::chrono::milliseconds interval = std::chrono::seconds(2));

}  // namespace mmserve::runtime
