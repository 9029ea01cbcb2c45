// The cloud executor's circuit breaker: after `failures` consecutive failed attempts at the
// endpoint it opens, and calls run locally at once instead of waiting on an endpoint that is
// down; after `cooldown` it lets one trial call through (half-open): its success closes the
// breaker, its failure opens it for another cooldown.
//
//   closed --(failures in a row)--> open --(cooldown passed, allow())--> half-open
//   half-open --record_success()--> closed        half-open --record_failure()--> open
//
// Every state change is reported to metrics::server_metrics().routing()
// .set_cloud_breaker_open() (open while not closed).
//
// Ownership: the executor owns one. Threading: every method is thread-safe (one mutex); the
// clock, injectable for tests, is called with it held and must not call back.
#pragma once

#include <chrono>
#include <functional>

#include "core/thread_annotations.h"

namespace mmserve::executors {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;
  enum class State { kClosed, kOpen, kHalfOpen };

  // `failures` < 1 counts as 1.
  CircuitBreaker(int failures, std::chrono::milliseconds cooldown, Now now = &Clock::now);

  // May an attempt go to the endpoint now? Closed: yes. Open: no, until the cooldown has
  // passed; then it turns half-open and this caller is the trial. Half-open: no while the
  // trial is out. Every true must be followed by one record_*() or release().
  bool allow();
  // The attempt got an answer (HTTP 200): closes the breaker, resets the count.
  void record_success();
  // The attempt failed (connect error, timeout, 429, 5xx): counts toward opening; a failed
  // trial opens it again.
  void record_failure();
  // The attempt ended with no verdict on the endpoint (cancelled, or refused for the call's
  // own fault): a trial may be tried again; the count is left as is.
  void release();

  State state() const;
  static const char* state_name(State state);

 private:
  void open() REQUIRES(mutex_);

  const int failures_to_open_;
  const std::chrono::milliseconds cooldown_;
  const Now now_;
  mutable Mutex mutex_;
  State state_ GUARDED_BY(mutex_) = State::kClosed;
  int consecutive_failures_ GUARDED_BY(mutex_) = 0;
  Clock::time_point opened_at_ GUARDED_BY(mutex_);
  bool trial_out_ GUARDED_BY(mutex_) = false;  // half-open: the trial call is running
};

}  // namespace mmserve::executors
