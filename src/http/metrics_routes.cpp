#include "http/metrics_routes.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "engine/versions.h"
#include "http/log_sink.h"
#include "metrics/server_metrics.h"
#include "metrics/text_format.h"

namespace mmserve::http {
namespace {

// The scheduler's state now; zeros while no model is loaded (nothing can run or wait).
void refresh_runtime_gauges(runtime::Runtime& rt) {
  scheduler::SchedulerStats s;
  const auto state = rt.state();
  if (state == runtime::State::kReady || state == runtime::State::kDraining) {
    try {
      s = rt.text().stats();
    } catch (const Error&) {
    }
  }
  auto& m = metrics::server_metrics();
  m.set_task_load("text-gen", s.running, s.waiting, rt.options().queue_size);
  m.set_kv_cache_usage(s.kv_usage);
}

}  // namespace

void register_metrics_routes(httplib::Server& server, runtime::Runtime& rt) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& m = metrics::server_metrics();
    m.set_build_info(version(), llama_cpp_version(), whisper_cpp_version(), backend_names());
    const char* library = std::getenv("MMSERVE_NVML_LIBRARY");
    const std::string status = m.start_gpu_metrics(
        library != nullptr && *library != '\0' ? library : metrics::kNvmlLibrary);
    std::fprintf(stderr, "mmserve: %s\n", status.c_str());
  });

  server.Get("/metrics", [&rt](const httplib::Request&, httplib::Response& res) {
    refresh_runtime_gauges(rt);
    auto& m = metrics::server_metrics();
    m.set_log_lines_dropped(LogSink::standard_error().dropped());
    res.set_content(m.scrape(), metrics::kTextContentType);
  });
}

}  // namespace mmserve::http
