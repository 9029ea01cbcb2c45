// GET /metrics: every mmserve series in the Prometheus text exposition format (version 0.0.4).
// The scheduler's gauges, the process figures and the GPU figures are read at scrape time;
// counters and histograms are kept up to date by the code they observe.
#pragma once

#include <httplib.h>

#include "runtime/runtime.h"

namespace mmserve::http {

// Registers the route; the first call also sets mmserve_build_info and starts the GPU metrics
// (NVML; $MMSERVE_NVML_LIBRARY overrides the library loaded), printing one line on stderr that
// says whether they are on and, when not, why. `runtime` must outlive the server.
void register_metrics_routes(httplib::Server& server, runtime::Runtime& runtime);

}  // namespace mmserve::http
