// The standard process_* series of Prometheus client libraries (resident and virtual memory,
// CPU seconds, start time, open and maximum file descriptors), read from /proc/self at scrape
// time. Names follow the Prometheus conventions so that existing dashboards and alerts work.
//
// Threading: refresh() may be called from any thread, concurrently.
#pragma once

#include <cstdint>
#include <optional>

#include "metrics/registry.h"

namespace mmserve::metrics {

// One reading of /proc/self; fields are nullopt when the kernel did not say (not Linux, or
// /proc not mounted).
struct ProcessSample {
  std::optional<double> cpu_seconds;  // user + system
  std::optional<double> resident_bytes;
  std::optional<double> virtual_bytes;
  std::optional<double> start_time_seconds;  // since the Unix epoch
  std::optional<double> open_fds;
  std::optional<double> max_fds;
};
ProcessSample read_process_sample();

class ProcessMetrics {
 public:
  // Registers the process_* families in `registry`.
  explicit ProcessMetrics(Registry& registry);
  // Reads /proc/self and updates the series.
  void refresh();

 private:
  Counter& cpu_seconds_;
  Gauge& resident_bytes_;
  Gauge& virtual_bytes_;
  Gauge& start_time_;
  Gauge& open_fds_;
  Gauge& max_fds_;
};

}  // namespace mmserve::metrics
