#include "scheduler/generation.h"

namespace mmserve::scheduler {

std::string Generation::take_text(std::chrono::milliseconds wait, bool& finished) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, wait, [&] { return !pending_.empty() || outcome_.has_value(); });
  std::string out;
  out.swap(pending_);
  finished = outcome_.has_value();
  return out;
}

const GenerationOutcome& Generation::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return outcome_.has_value(); });
  return *outcome_;
}

bool Generation::wait_for(std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, wait, [&] { return outcome_.has_value(); });
}

bool Generation::finished() const {
  std::lock_guard lock(mutex_);
  return outcome_.has_value();
}

void Generation::push_text(std::string_view text) {
  {
    std::lock_guard lock(mutex_);
    pending_.append(text);
  }
  changed_.notify_all();
}

void Generation::finish(GenerationOutcome outcome) {
  {
    std::lock_guard lock(mutex_);
    outcome_ = std::move(outcome);
  }
  changed_.notify_all();
}

}  // namespace mmserve::scheduler
