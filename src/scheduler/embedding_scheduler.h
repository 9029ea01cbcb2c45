// The embedding scheduler: a bounded queue of embedding requests in front of one Embedder
// (engine/embedding_model.h), driven by its own thread.
//
// Each loop the thread packs the inputs of waiting requests, first come first served, into one
// embed() call of at most batch_tokens() tokens and max_sequences() inputs; a request of many
// inputs may span several calls, and small requests that arrive together share one. A request
// is answered when all its inputs are embedded. Requests whose client went away or whose
// deadline passed are dropped before their next inputs run.
//
// Admission: at most queue_size + max_sequences() requests may be outstanding (queued or in
// the running call); more are refused with kBusy (429). Draining: kUnavailable.
//
// Ownership: the scheduler owns the Embedder and its thread; EmbeddingJob handles are shared
// with submitters. Threading: every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_annotations.h"
#include "engine/embedding_model.h"

namespace mmserve::scheduler {

struct EmbeddingRequest {
  std::vector<std::vector<engine::Token>> inputs;  // each validated by submit()
  std::vector<std::string> fields;                 // what errors name per input ("input[2]")
};

// How a request ended: its vectors (one per input, in order), or the error: kTimeout,
// kCancelled, kUnavailable (shutdown) or kInternal (the engine failed).
struct EmbeddingOutcome {
  std::vector<std::vector<float>> vectors;
  int64_t prompt_tokens = 0;
  double queue_ms = 0;  // submitted to its first input's call
  double embed_ms = 0;  // its first call's start to its last's end
  std::optional<Error> error;
  bool ok() const { return !error.has_value(); }
};

class EmbeddingJob {
 public:
  using Clock = std::chrono::steady_clock;
  explicit EmbeddingJob(Clock::time_point deadline) : deadline_(deadline) {}

  // Blocks until the outcome is in.
  const EmbeddingOutcome& wait();
  // Waits up to `wait`; true when the outcome is in.
  bool wait_for(std::chrono::milliseconds wait);
  // Asks the scheduler to drop the request; it finishes with kCancelled soon.
  void cancel() { cancelled_.store(true); }

  // Scheduler side.
  bool cancel_requested() const { return cancelled_.load(); }
  Clock::time_point deadline() const { return deadline_; }
  void finish(EmbeddingOutcome outcome);

 private:
  mutable Mutex mutex_;
  CondVar changed_;
  std::optional<EmbeddingOutcome> outcome_ GUARDED_BY(mutex_);
  std::atomic<bool> cancelled_{false};
  const Clock::time_point deadline_;
};

struct EmbeddingSchedulerOptions {
  int32_t queue_size = 64;  // requests that may wait beyond one call's worth
};

struct EmbeddingStats {
  int32_t outstanding = 0;  // requests queued or in the running call
  int32_t running = 0;      // requests with inputs in the running call
  int32_t queue_capacity = 0;
  uint64_t calls = 0;   // embed() calls made
  uint64_t inputs = 0;  // inputs embedded
  uint64_t cancelled = 0;
};

// Called on the scheduler thread when a request ends, before its submitter is woken (metrics).
using EmbeddingObserver = std::function<void(const EmbeddingOutcome&)>;

class EmbeddingScheduler {
 public:
  EmbeddingScheduler(std::unique_ptr<engine::Embedder> embedder, EmbeddingSchedulerOptions options);
  ~EmbeddingScheduler();  // ends what is left with kUnavailable, then joins the thread
  EmbeddingScheduler(const EmbeddingScheduler&) = delete;
  EmbeddingScheduler& operator=(const EmbeddingScheduler&) = delete;

  // Validates every input (Error(kInvalidInput) naming its field) and queues the request.
  // Throws kBusy (full), kUnavailable (draining).
  std::shared_ptr<EmbeddingJob> submit(EmbeddingRequest request,
                                       EmbeddingJob::Clock::time_point deadline);
  // Embeds `tokens` through the whole path, so readiness means a real decode worked. Throws
  // Error(kModelLoad, field "model") on failure.
  void probe(const std::vector<engine::Token>& tokens, std::chrono::milliseconds timeout);

  void stop_accepting();
  void cancel_all();  // ends every outstanding request (kUnavailable)
  EmbeddingStats stats() const;
  void set_observer(EmbeddingObserver observer);

 private:
  struct Pending {
    EmbeddingRequest request;
    std::shared_ptr<EmbeddingJob> job;
    EmbeddingJob::Clock::time_point submitted;
    std::optional<EmbeddingJob::Clock::time_point> started;
    size_t next = 0;  // the first input not yet embedded
    EmbeddingOutcome outcome;
  };

  void run();
  // Scheduler thread: ends `p` (removed from active_ by the caller).
  void finish(Pending& p, std::optional<Error> error);

  std::unique_ptr<engine::Embedder> embedder_;  // embed() only on the scheduler thread
  const EmbeddingSchedulerOptions options_;

  mutable Mutex mutex_;
  CondVar wake_;
  std::deque<Pending> queue_ GUARDED_BY(mutex_);  // submitted, not yet taken by the thread
  bool accepting_ GUARDED_BY(mutex_) = true;
  bool cancel_all_ GUARDED_BY(mutex_) = false;
  bool stopping_ GUARDED_BY(mutex_) = false;
  EmbeddingObserver observer_ GUARDED_BY(mutex_);
  std::deque<Pending> active_;          // scheduler thread only: taken, inputs left
  EmbeddingObserver running_observer_;  // scheduler thread: copied each loop
  std::atomic<int32_t> outstanding_{0};
  std::atomic<int32_t> running_{0};
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> inputs_{0};
  std::atomic<uint64_t> cancelled_{0};
  std::thread thread_;
};

}  // namespace mmserve::scheduler
