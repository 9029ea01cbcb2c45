#include "stages/quota/rate_window.h"

#include <algorithm>

namespace mmserve::stages {

void RateWindow::add(int64_t at_ms, int64_t amount) {
  if (amount <= 0) {
    return;
  }
  if (!entries_.empty() && entries_.back().at_ms / 1000 == at_ms / 1000) {
    entries_.back().amount += amount;
  } else if (!entries_.empty() && at_ms < entries_.back().at_ms) {
    // Out of order (history replayed at start-up, clocks of two threads): keep it sorted.
    const auto pos = std::upper_bound(entries_.begin(), entries_.end(), at_ms,
                                      [](int64_t t, const Entry& e) { return t < e.at_ms; });
    entries_.insert(pos, {at_ms, amount});
  } else {
    entries_.push_back({at_ms, amount});
  }
  total_ += amount;
}

void RateWindow::expire(int64_t now_ms) {
  while (!entries_.empty() && entries_.front().at_ms <= now_ms - span_ms_) {
    total_ -= entries_.front().amount;
    entries_.pop_front();
  }
}

int64_t RateWindow::used(int64_t now_ms) {
  expire(now_ms);
  return total_;
}

int64_t RateWindow::reset_ms(int64_t now_ms, int64_t limit) {
  expire(now_ms);
  int64_t left = total_;
  for (const auto& e : entries_) {
    if (left < limit) {
      break;
    }
    left -= e.amount;
    if (left < limit) {
      return std::max<int64_t>(0, e.at_ms + span_ms_ - now_ms);
    }
  }
  return 0;
}

int64_t RateWindow::clear_ms(int64_t now_ms) {
  expire(now_ms);
  return entries_.empty() ? 0 : std::max<int64_t>(0, entries_.back().at_ms + span_ms_ - now_ms);
}

}  // namespace mmserve::stages
