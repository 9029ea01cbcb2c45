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

// The schedulers' state now, summed over the loaded models of each task; zeros while no model
// is loaded (nothing can run or wait).
void refresh_runtime_gauges(runtime::Runtime& rt) {
  int running = 0, waiting = 0, capacity = 0;
  int speech_running = 0, speech_waiting = 0, speech_capacity = 0;
  double kv_used = 0, kv_models = 0;
  const auto state = rt.state();
  if (state == runtime::State::kReady || state == runtime::State::kDraining) {
    for (const auto& lease : rt.models().loaded()) {
      if (lease->spec().kind == runtime::ModelKind::kSpeech) {
        const auto s = lease->speech().stats();
        speech_running += s.active - s.queued;
        speech_waiting += s.queued;
        speech_capacity += s.queue_capacity;
      } else {
        const auto s = lease->text().stats();
        running += s.running;
        waiting += s.waiting;
        capacity += s.queue_capacity;
        kv_used += s.kv_usage;
        kv_models += 1;
      }
    }
  }
  auto& m = metrics::server_metrics();
  m.set_task_load("text-gen", running, waiting, capacity);
  if (rt.has_speech()) m.set_task_load("speech-transcribe", speech_running, speech_waiting, speech_capacity);
  m.set_kv_cache_usage(kv_models > 0 ? kv_used / kv_models : 0);
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
