// One generation request as seen from the thread that submitted it: a thread-safe mailbox the
// scheduler fills (text pieces, then the final result) and the HTTP handler drains.
//
// Ownership: shared by the submitter and the scheduler (std::shared_ptr). The scheduler only
// pushes; the submitter only pops, waits and may cancel. All methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include "engine/text_batch.h"

namespace mmserve::scheduler {

struct GenerationOutcome {
  engine::SequenceResult result;
  double queue_ms = 0;     // submitted to started
  bool timed_out = false;  // ended by its deadline (result.reason is kCancelled)
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
  bool finished() const;
  // Asks the scheduler to stop this request (client gone); it finishes with kCancelled soon.
  void cancel() { cancelled_.store(true); }

  // Scheduler side.
  bool cancel_requested() const { return cancelled_.load(); }
  Clock::time_point deadline() const { return deadline_; }
  void push_text(std::string_view text);
  void finish(GenerationOutcome outcome);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string pending_;                       // guarded by mutex_
  std::optional<GenerationOutcome> outcome_;  // guarded by mutex_
  std::atomic<bool> cancelled_{false};
  const Clock::time_point deadline_;
};

}  // namespace mmserve::scheduler
