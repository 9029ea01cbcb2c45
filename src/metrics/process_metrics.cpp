#include "metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mmserve::metrics {
namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The boot time, from the "btime" line of /proc/stat.
std::optional<double> boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double value = 0;
      if (in >> value) return value;
      return std::nullopt;
    }
    in.ignore(1 << 20, '\n');
  }
  return std::nullopt;
}

}  // namespace

ProcessSample read_process_sample() {
  ProcessSample s;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));

  // /proc/self/stat: "pid (comm) state ppid ...". comm may hold spaces and parentheses, so
  // fields are counted from the last ')'. Field numbers below are proc(5)'s (1-based).
  const std::string stat = read_file("/proc/self/stat");
  if (const auto close = stat.rfind(')'); close != std::string::npos && ticks > 0) {
    std::istringstream rest(stat.substr(close + 1));
    std::vector<std::string> fields;  // fields[0] is field 3 (state)
    for (std::string f; rest >> f;) fields.push_back(f);
    auto field = [&](size_t number) { return std::stod(fields.at(number - 3)); };
    try {
      s.cpu_seconds = (field(14) + field(15)) / ticks;  // utime + stime
      s.virtual_bytes = field(23);                      // vsize, bytes
      s.resident_bytes = field(24) * page;              // rss, pages
      if (auto boot = boot_time_seconds()) s.start_time_seconds = *boot + field(22) / ticks;
    } catch (const std::exception&) {
      // An unexpected layout: leave the series unset rather than export nonsense.
    }
  }

  std::error_code ec;
  std::filesystem::directory_iterator fds("/proc/self/fd", ec);
  if (!ec) {
    // The iterator's own descriptor is counted too, as client_golang does.
    s.open_fds = static_cast<double>(std::distance(fds, std::filesystem::directory_iterator{}));
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    s.max_fds = static_cast<double>(limit.rlim_cur);
  }
  return s;
}

ProcessMetrics::ProcessMetrics(Registry& registry)
    : cpu_seconds_(registry
                       .counter("process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds.")
                       .labels({})),
      resident_bytes_(
          registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
              .labels({})),
      virtual_bytes_(registry.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
                         .labels({})),
      start_time_(registry
                      .gauge("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.")
                      .labels({})),
      open_fds_(registry.gauge("process_open_fds", "Number of open file descriptors.").labels({})),
      max_fds_(registry.gauge("process_max_fds", "Maximum number of open file descriptors.")
                   .labels({})) {}

void ProcessMetrics::refresh() {
  const ProcessSample s = read_process_sample();
  if (s.cpu_seconds) cpu_seconds_.mirror(*s.cpu_seconds);
  if (s.resident_bytes) resident_bytes_.set(*s.resident_bytes);
  if (s.virtual_bytes) virtual_bytes_.set(*s.virtual_bytes);
  if (s.start_time_seconds) start_time_.set(*s.start_time_seconds);
  if (s.open_fds) open_fds_.set(*s.open_fds);
  if (s.max_fds) max_fds_.set(*s.max_fds);
}

}  // namespace mmserve::metrics
