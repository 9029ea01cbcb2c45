// When the cloud executor tries an attempt again, and how long it waits first: what each
// attempt's answer counts as (the outcome names of mmserve_cloud_requests_total), which of
// those are worth another try, and the backoff (exponential with jitter, or the endpoint's
// Retry-After, capped). Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "executors/cloud/cloud_options.h"

namespace mmserve::executors {

// "ok" (200), "http_429", "http_4xx" (other 4xx), "http_5xx", and for HTTP statuses outside
// those (1xx, 3xx, 2xx other than 200) "bad_response".
const char* outcome_of_status(int status);

// Worth another attempt: 429, 5xx, a connect error or a timeout. Not: any other 4xx (the call
// itself is refused), nor a bad response.
bool retryable(std::string_view outcome);

// Retry-After in its seconds form ("3"); nullopt for its date form, or anything else.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

// The wait before retry number `retry` (1 for the first): backoff * 2^(retry-1), scaled by
// `jitter` (in [0, 1): 50% to 100% of it), or Retry-After when longer; at most max_backoff.
std::chrono::milliseconds retry_delay(const CloudOptions& options, int retry,
                                      std::optional<std::chrono::seconds> retry_after,
                                      double jitter);

}  // namespace mmserve::executors
