#include "executors/cloud/circuit_breaker.h"

#include <algorithm>

#include "metrics/server_metrics.h"

namespace mmserve::executors {

CircuitBreaker::CircuitBreaker(int failures, std::chrono::milliseconds cooldown, Now now)
    : failures_to_open_(std::max(failures, 1)), cooldown_(cooldown), now_(std::move(now)) {}

bool CircuitBreaker::allow() {
  MutexLock lock(mutex_);
  switch (state_) {
    case State::kClosed: return true;
    case State::kOpen:
      if (now_() - opened_at_ < cooldown_) {
        return false;
      }
      state_ = State::kHalfOpen;
      trial_out_ = true;
      return true;
    case State::kHalfOpen:
      if (trial_out_) {
        return false;
      }
      trial_out_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::record_success() {
  MutexLock lock(mutex_);
  consecutive_failures_ = 0;
  trial_out_ = false;
  if (state_ != State::kClosed) {
    state_ = State::kClosed;
    metrics::server_metrics().routing().set_cloud_breaker_open(false);
  }
}

void CircuitBreaker::record_failure() {
  MutexLock lock(mutex_);
  ++consecutive_failures_;
  switch (state_) {
    case State::kClosed:
      if (consecutive_failures_ >= failures_to_open_) {
        open();
      }
      break;
    case State::kHalfOpen: open(); break;
    case State::kOpen: break;  // an attempt that began before it opened: already counted
  }
}

void CircuitBreaker::release() {
  MutexLock lock(mutex_);
  trial_out_ = false;
}

CircuitBreaker::State CircuitBreaker::state() const {
  MutexLock lock(mutex_);
  return state_;
}

const char* CircuitBreaker::state_name(State state) {
  switch (state) {
    case State::kClosed: return "closed";
    case State::kOpen: return "open";
    case State::kHalfOpen: return "half_open";
  }
  return "closed";
}

void CircuitBreaker::open() {
  const bool was_closed = state_ == State::kClosed;
  state_ = State::kOpen;
  opened_at_ = now_();
  trial_out_ = false;
  if (was_closed) {
    metrics::server_metrics().routing().set_cloud_breaker_open(true);
  }
}

}  // namespace mmserve::executors
