#include "runtime/process_memory.h"

#include <malloc.h>

#include <atomic>

namespace mmserve::runtime {

void limit_malloc_arenas(int arenas) {
#ifdef M_ARENA_MAX
  mallopt(M_ARENA_MAX, arenas);
#else
  (void)arenas;
#endif
#ifdef M_MMAP_THRESHOLD
  // A fixed threshold turns off glibc's dynamic one, which rises to 32 MiB after the first large
  // free and then puts every later decoded image, PCM buffer and base64 body on the heap, where
  // freeing it leaves holes; mapped blocks go back to the kernel the moment they are freed.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

void release_free_memory(std::chrono::milliseconds interval) {
  using Clock = std::chrono::steady_clock;
  static std::atomic<int64_t> next_ms{0};
  const int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count();
  int64_t due = next_ms.load(std::memory_order_relaxed);
  if (now < due) return;
  // One caller wins the slot; the others return at once.
  if (!next_ms.compare_exchange_strong(due, now + interval.count())) return;
  malloc_trim(0);
}

}  // namespace mmserve::runtime
