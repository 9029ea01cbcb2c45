#include "metrics/routing_metrics.h"

#include <string>

namespace mmserve::metrics {

RoutingMetrics::RoutingMetrics(Registry& registry)
    : findings_(registry.counter("mmserve_privacy_findings_total",
                                 "Personal data found in inference calls by the privacy "
                                 "detectors, by type (the values are never recorded).",
                                 {"type"})),
      decisions_(registry.counter("mmserve_route_decisions_total",
                                  "Inference calls the privacy router decided, by route (local, "
                                  "cloud, refused) and reason.",
                                  {"route", "reason"})),
      cloud_requests_(registry.counter("mmserve_cloud_requests_total",
                                       "Attempts at the cloud endpoint, by outcome (ok, http_429, "
                                       "http_4xx, http_5xx, connect_error, timeout, bad_response).",
                                       {"outcome"})),
      cloud_request_seconds_(
          registry
              .histogram("mmserve_cloud_request_seconds",
                         "Time from an attempt at the cloud endpoint to its response headers "
                         "(or its failure).",
                         {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})
              .labels({})),
      cloud_fallbacks_(registry.counter("mmserve_cloud_fallbacks_total",
                                        "Calls routed to the cloud that ran locally (or failed, "
                                        "by policy) instead, by reason.",
                                        {"reason"})),
      cloud_breaker_open_(registry
                              .gauge("mmserve_cloud_breaker_open",
                                     "1 while the cloud endpoint's circuit breaker is open "
                                     "(calls go local without trying it).")
                              .labels({})),
      tokens_kept_local_(registry
                             .counter("mmserve_tokens_kept_local_total",
                                      "Prompt and completion tokens of inference calls served on "
                                      "this machine.")
                             .labels({})),
      cost_saved_(registry
                      .counter("mmserve_cloud_cost_saved_total",
                               "Estimated cloud cost of the tokens kept local, at the configured "
                               "price per 1K tokens (--cloud-price-per-1k).")
                      .labels({})) {}

void RoutingMetrics::record_findings(std::string_view type, int64_t count) {
  findings_.labels({std::string(type)}).inc(static_cast<double>(count));
}

void RoutingMetrics::record_decision(std::string_view route, std::string_view reason) {
  decisions_.labels({std::string(route), std::string(reason)}).inc();
}

void RoutingMetrics::record_cloud_attempt(std::string_view outcome, double seconds) {
  cloud_requests_.labels({std::string(outcome)}).inc();
  cloud_request_seconds_.observe(seconds);
}

void RoutingMetrics::record_cloud_fallback(std::string_view reason) {
  cloud_fallbacks_.labels({std::string(reason)}).inc();
}

void RoutingMetrics::set_cloud_breaker_open(bool open) {
  cloud_breaker_open_.set(open ? 1 : 0);
}

void RoutingMetrics::record_kept_local(int64_t tokens, double price_per_1k_tokens) {
  tokens_kept_local_.inc(static_cast<double>(tokens));
  cost_saved_.inc(static_cast<double>(tokens) * price_per_1k_tokens / 1000.0);
}

}  // namespace mmserve::metrics
