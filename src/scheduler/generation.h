// One generation request as seen from the thread that submitted it: a thread-safe mailbox the
// scheduler fills (text pieces, then the final result) and the HTTP handler drains.
//
// Ownership: shared by the submitter and the scheduler (std::shared_ptr). The scheduler only
// pushes; the submitter only pops, waits and may cancel. All methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/thread_annotations.h"
#include "engine/text_batch.h"

namespace mmserve::scheduler {

// How a request ended. `error` is set exactly when it did not end normally (stop or length),
// with the code the edge turns into a status: kTimeout (its deadline passed), kCancelled (its
// client went away), kUnavailable (the server is shutting down), kInternal (the engine failed).
// The code travels with the result; nothing downstream reads the message to tell them apart.
struct GenerationOutcome {
  engine::SequenceResult result;
  double queue_ms = 0;  // submitted to started
  std::optional<Error> error;

  bool ok() const { return !error.has_value(); }
  bool timed_out() const { return error && error->code() == ErrorCode::kTimeout; }
};

class Generation {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Generation(Clock::time_point deadline) : deadline_(deadline) {}

  // Submitter side.
  // Waits up to `wait` for news; returns the text produced since the last call (possibly
  // empty) and sets `finished` when the outcome is in and no text remains after this piece.
  std::string take_text(std::chrono::milliseconds wait, bool& finished);
  // Blocks until the outcome is in, then returns it.
  const GenerationOutcome& wait();
  // Waits up to `wait`; true when the outcome is in.
  bool wait_for(std::chrono::milliseconds wait);
  bool finished() const;
  // Asks the scheduler to stop this request (client gone); it finishes with kCancelled soon.
  void cancel() { cancelled_.store(true); }

  // Scheduler side.
  bool cancel_requested() const { return cancelled_.load(); }
  Clock::time_point deadline() const { return deadline_; }
  void push_text(std::string_view text);
  void finish(GenerationOutcome outcome);

 private:
  mutable Mutex mutex_;
  CondVar changed_;
  std::string pending_ GUARDED_BY(mutex_);
  std::optional<GenerationOutcome> outcome_ GUARDED_BY(mutex_);
  std::atomic<bool> cancelled_{false};
  const Clock::time_point deadline_;
};

}  // namespace mmserve::scheduler
