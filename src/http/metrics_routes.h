// GET /metrics: every mmserve series in the Prometheus text exposition format (version 0.0.4).
// The scheduler's gauges, the process figures and the GPU figures are read at scrape time;
// counters and histograms are kept up to date by the code they observe.
#pragma once

#include <vector>

#include "http/routes.h"

namespace mmserve::http {

// The route; the first call also sets mmserve_build_info and starts the GPU metrics (NVML;
// $MMSERVE_NVML_LIBRARY overrides the library loaded), printing one line on stderr that says
// whether they are on and, when not, why.
std::vector<Route> metrics_routes(const Services& services);

}  // namespace mmserve::http
