// The privacy router's and the cloud executor's metrics (issue 13's accountability): what the
// detectors found, where each call was sent and why, how the cloud endpoint behaved, and what
// keeping work on this machine saved. Part of the process-wide registry
// (server_metrics().routing()); docs/metrics.md lists every series.
//
// Who calls what: the privacy stage record_findings() and record_decision() once per decided
// call; the cloud executor record_cloud_attempt() per upstream attempt, record_cloud_fallback()
// when a call it was given ran locally instead, set_cloud_breaker_open() when its breaker
// changes; the privacy stage record_kept_local() when a local call ends.
//
// Threading: every method is thread-safe (registry.h).
#pragma once

#include <cstdint>
#include <string_view>

#include "metrics/registry.h"

namespace mmserve::metrics {

class RoutingMetrics {
 public:
  explicit RoutingMetrics(Registry& registry);

  // `count` findings of `type` in one call (mmserve_privacy_findings_total).
  void record_findings(std::string_view type, int64_t count);
  // One call decided: route "local", "cloud" or "refused", with the reason's short code
  // (mmserve_route_decisions_total).
  void record_decision(std::string_view route, std::string_view reason);
  // One attempt at the cloud endpoint: outcome "ok", "http_429", "http_4xx", "http_5xx",
  // "connect_error", "timeout", "bad_response"; `seconds` until its response headers or failure
  // (mmserve_cloud_requests_total, mmserve_cloud_request_seconds).
  void record_cloud_attempt(std::string_view outcome, double seconds);
  // A call routed to the cloud that ran locally (or failed, by policy) instead: reason
  // "breaker_open", "cloud_failed", "not_eligible" (mmserve_cloud_fallbacks_total).
  void record_cloud_fallback(std::string_view reason);
  void set_cloud_breaker_open(bool open);  // mmserve_cloud_breaker_open
  // A call served here ended with `tokens` (prompt and completion): what the cloud would have
  // billed at `price_per_1k_tokens` (mmserve_tokens_kept_local_total,
  // mmserve_cloud_cost_saved_total).
  void record_kept_local(int64_t tokens, double price_per_1k_tokens);

 private:
  Family<Counter>& findings_;
  Family<Counter>& decisions_;
  Family<Counter>& cloud_requests_;
  Histogram& cloud_request_seconds_;
  Family<Counter>& cloud_fallbacks_;
  Gauge& cloud_breaker_open_;
  Counter& tokens_kept_local_;
  Counter& cost_saved_;
};

}  // namespace mmserve::metrics
