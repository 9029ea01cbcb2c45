#include "scheduler/generation.h"

namespace mmserve::scheduler {

std::string Generation::take_text(std::chrono::milliseconds wait, bool& finished) {
  MutexLock lock(mutex_);
  const auto until = Clock::now() + wait;
  while (pending_.empty() && !outcome_.has_value()) {
    if (changed_.wait_until(mutex_, until) == std::cv_status::timeout) {
      break;
    }
  }
  std::string out;
  out.swap(pending_);
  finished = outcome_.has_value();
  return out;
}

const GenerationOutcome& Generation::wait() {
  MutexLock lock(mutex_);
  while (!outcome_.has_value()) {
    changed_.wait(mutex_);
  }
  return *outcome_;
}

bool Generation::wait_for(std::chrono::milliseconds wait) {
  MutexLock lock(mutex_);
  const auto until = Clock::now() + wait;
  while (!outcome_.has_value()) {
    if (changed_.wait_until(mutex_, until) == std::cv_status::timeout) {
      return outcome_.has_value();
    }
  }
  return true;
}

bool Generation::finished() const {
  MutexLock lock(mutex_);
  return outcome_.has_value();
}

void Generation::push_text(std::string_view text) {
  {
    MutexLock lock(mutex_);
    pending_.append(text);
  }
  changed_.notify_all();
}

void Generation::finish(GenerationOutcome outcome) {
  {
    MutexLock lock(mutex_);
    outcome_ = std::move(outcome);
  }
  changed_.notify_all();
}

}  // namespace mmserve::scheduler
