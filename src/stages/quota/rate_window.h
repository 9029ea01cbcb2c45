// A sliding window of amounts (requests, tokens, milliseconds of audio) over a fixed span: what
// a key used in the last minute or day. Amounts added within the same second share one entry,
// so a window holds at most span/1 s entries whatever the traffic.
//
// Threading: none; the quota stage guards each key's windows with its lock.
#pragma once

#include <cstdint>
#include <deque>

namespace mmserve::stages {

class RateWindow {
 public:
  explicit RateWindow(int64_t span_ms) : span_ms_(span_ms) {}

  // Adds `amount` at `at_ms` (Unix milliseconds; times may come slightly out of order).
  void add(int64_t at_ms, int64_t amount);
  // The amount within (now - span, now].
  int64_t used(int64_t now_ms);
  // Milliseconds from now until used() falls below `limit` (0 when it already is).
  int64_t reset_ms(int64_t now_ms, int64_t limit);
  // Milliseconds from now until the window is empty (OpenAI's x-ratelimit-reset-*).
  int64_t clear_ms(int64_t now_ms);

 private:
  struct Entry {
    int64_t at_ms;
    int64_t amount;
  };
  void expire(int64_t now_ms);

  int64_t span_ms_;
  std::deque<Entry> entries_;  // oldest first
  int64_t total_ = 0;
};

}  // namespace mmserve::stages
