#include "executors/cloud/retry_policy.h"

#include <algorithm>
#include <charconv>

namespace mmserve::executors {

const char* outcome_of_status(int status) {
  if (status == 200) {
    return "ok";
  }
  if (status == 429) {
    return "http_429";
  }
  if (status >= 400 && status < 500) {
    return "http_4xx";
  }
  if (status >= 500 && status < 600) {
    return "http_5xx";
  }
  return "bad_response";
}

bool retryable(std::string_view outcome) {
  return outcome == "http_429" || outcome == "http_5xx" || outcome == "connect_error" ||
         outcome == "timeout";
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  int64_t seconds = 0;
  const auto* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, seconds);
  if (value.empty() || ec != std::errc() || ptr != end || seconds < 0) {
    return std::nullopt;
  }
  // Far beyond any cap; keeps the conversion to milliseconds from overflowing.
  return std::chrono::seconds(std::min<int64_t>(seconds, 86400));
}

std::chrono::milliseconds retry_delay(const CloudOptions& options, int retry,
                                      std::optional<std::chrono::seconds> retry_after,
                                      double jitter) {
  using std::chrono::milliseconds;
  const auto cap = std::max(options.max_backoff, milliseconds(0));
  auto delay = std::clamp(options.backoff, milliseconds(0), cap);
  for (int i = 1; i < retry && delay < cap; ++i) {
    delay = std::min(delay * 2, cap);
  }
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto wait =
      milliseconds(static_cast<int64_t>(static_cast<double>(delay.count()) * (0.5 + 0.5 * jitter)));
  if (retry_after) {
    wait = std::max<milliseconds>(wait, *retry_after);
  }
  return std::min(wait, cap);
}

}  // namespace mmserve::executors
