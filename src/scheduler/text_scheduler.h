// The text scheduler: a bounded wait queue in front of one TextBatch, driven by its own thread.
//
// Requests are admitted first-come first-served when a slot and enough KV cells are free, and
// join the running batch at the next step (continuous batching). Each loop it also ends
// requests whose client went away or whose deadline passed.
//
// KV admission policy (bounded default reservation). A running request reserves prompt +
// max_tokens cells of the shared pool for its whole life, so no decode ever runs out of room
// mid-answer; requests admitted in the same step add their reservations up. A request that does
// not fit waits in the queue (first come, first served), or is refused with kBusy when the queue
// is full; it is never failed for lack of room. A request without max_tokens (OpenAI clients
// omit it) is given default_max_tokens(): what is left of its fair share of the pool,
// n_ctx / parallel tokens (capped by one sequence's capacity), so `parallel` such requests run
// at once and each ends with finish_reason "length" at that documented limit. When its prompt
// leaves less than min(kMinDefaultTokens, share / 4) of the share, it gets up to
// kMinDefaultTokens (within one sequence's capacity) and waits for the room. This is what
// llama-server does with its per-slot context, without its cost: a request that asks for more (an
// explicit max_tokens up to the capacity) may take it.
//
// Ownership: the scheduler owns the TextBatch and its thread; Generation handles are shared
// with submitters. Threading: every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "core/thread_annotations.h"
#include "engine/text_batch.h"
#include "scheduler/cpu_share.h"
#include "scheduler/generation.h"

namespace mmserve::scheduler {

struct SchedulerOptions {
  // Requests that may wait for a slot beyond those free slots take at once; more are refused
  // with kBusy. 0: never wait.
  int32_t queue_size = 64;
  // When set, each step runs with this tenant's grant of CPU threads (cpu_share.h).
  std::shared_ptr<CpuShare::Tenant> cpu;
};

struct SchedulerStats {
  int32_t running = 0;
  int32_t waiting = 0;
  int32_t queue_capacity = 0;
  bool full = false;  // a request submitted now would be refused with kBusy
  double kv_usage = 0;
  uint64_t steps = 0;
  uint64_t cancelled = 0;  // requests ended because their client left, a deadline or shutdown
};

// Called on the scheduler thread after every decode step (metrics).
using StepObserver = std::function<void(const engine::StepStats&)>;
// Called on the scheduler thread when a request ends (finished, failed, cancelled, or dropped
// from the queue), before its submitter is woken: whatever the submitter reports next is
// already counted (metrics).
using FinishObserver = std::function<void(const GenerationOutcome&)>;

class TextScheduler {
 public:
  TextScheduler(std::unique_ptr<engine::TextBatch> batch, SchedulerOptions options);
  ~TextScheduler();  // cancels everything still queued or running, then joins the thread
  TextScheduler(const TextScheduler&) = delete;
  TextScheduler& operator=(const TextScheduler&) = delete;

  // Validates and queues a request; max_tokens 0 means "not given" (default_max_tokens).
  // Throws Error: kInvalidInput (bad request, field named), kBusy (queue full), kUnavailable
  // (draining).
  std::shared_ptr<Generation> submit(engine::GenerationRequest request,
                                     Generation::Clock::time_point deadline);

  // Decodes one token of a fixed prompt through the whole path, so readiness means a real decode
  // worked, not only that the file loaded. Throws Error(kModelLoad, field "model") on failure.
  void probe(std::chrono::milliseconds timeout);

  // Refuse new requests from now on (shutdown drain); running and queued ones continue.
  void stop_accepting();
  // Ends every queued and running request with kCancelled.
  void cancel_all();

  SchedulerStats stats() const;
  const engine::TextModel& model() const { return batch_->model(); }
  // The most tokens (prompt + generated) one sequence may hold.
  int32_t sequence_capacity() const;
  // One running request's fair share of the KV pool: n_ctx / parallel, at most the capacity.
  int32_t sequence_share() const;
  // max_tokens for a request that gave none (see the policy above).
  int32_t default_max_tokens(size_t prompt_tokens) const;
  static constexpr int32_t kMinDefaultTokens = 256;
  void set_step_observer(StepObserver observer);
  void set_finish_observer(FinishObserver observer);

 private:
  struct Waiting {
    engine::GenerationRequest request;
    std::shared_ptr<Generation> generation;
    Generation::Clock::time_point submitted;
  };
  struct Running {
    engine::TextBatch::SequenceId id;
    std::shared_ptr<Generation> generation;
  };

  void run();
  bool queue_full_locked() const REQUIRES(mutex_);
  // Scheduler thread: ends running requests that were cancelled or ran past their deadline.
  void reap_running(bool cancel_everything);

  std::unique_ptr<engine::TextBatch> batch_;  // used only on the scheduler thread after start
  const SchedulerOptions options_;

  mutable Mutex mutex_;
  CondVar wake_;
  std::deque<Waiting> queue_ GUARDED_BY(mutex_);
  std::vector<Running> running_;  // scheduler thread only
  bool accepting_ GUARDED_BY(mutex_) = true;
  bool cancel_all_ GUARDED_BY(mutex_) = false;
  bool stopping_ GUARDED_BY(mutex_) = false;
  StepObserver observer_ GUARDED_BY(mutex_);
  FinishObserver finish_observer_ GUARDED_BY(mutex_);
  FinishObserver running_finish_observer_;  // scheduler thread: copied each loop
  std::atomic<int32_t> running_count_{0};
  std::atomic<double> kv_usage_{0};
  std::atomic<uint64_t> steps_{0};
  std::atomic<uint64_t> cancelled_{0};
  std::thread thread_;
};

}  // namespace mmserve::scheduler
