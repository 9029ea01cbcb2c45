// CPU threads shared by the schedulers of one process (a text model beside a speech model).
//
// Why: a fixed split (--speech-threads beside a text model) leaves cores idle whenever one side
// has nothing to do: text streams decoded on one of two cores while no transcription runs, or
// the reverse. Here each scheduler is a tenant that says when it has work. A tenant alone with
// work runs with every thread; while another tenant has work too, each runs with its share (the
// split), so the two never oversubscribe the cores. Engines fix their thread count per call (a
// text step, a whisper window), so a change takes effect at a tenant's next call: for at most
// one step or window the two may together run more threads than their shares.
//
// Ownership: the registry owns the CpuShare (shared_ptr); each scheduler owns its Tenant, which
// keeps the CpuShare alive. Threading: every method is thread-safe (atomics).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace mmserve::scheduler {

class CpuShare : public std::enable_shared_from_this<CpuShare> {
 public:
  explicit CpuShare(int32_t total_threads);
  [[nodiscard]] int32_t total() const { return total_; }

  class Tenant {
   public:
    Tenant(std::shared_ptr<CpuShare> share, int32_t threads_beside_others);
    ~Tenant();  // stops being busy
    Tenant(const Tenant&) = delete;
    Tenant& operator=(const Tenant&) = delete;

    // Whether this tenant has work (queued or running); idempotent.
    void set_busy(bool busy);
    // Threads for this tenant's next engine call: every thread while no other tenant is busy,
    // else its share.
    [[nodiscard]] int32_t threads() const;
    [[nodiscard]] int32_t share() const { return share_; }

   private:
    std::shared_ptr<CpuShare> owner_;
    const int32_t share_;
    std::atomic<bool> busy_{false};
  };

  // A tenant that runs with `threads_beside_others` (clamped to [1, total]) while others work.
  [[nodiscard]] std::unique_ptr<Tenant> tenant(int32_t threads_beside_others);

 private:
  const int32_t total_;
  std::atomic<int32_t> busy_tenants_{0};
};

}  // namespace mmserve::scheduler
