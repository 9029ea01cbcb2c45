#include "http/metrics_routes.h"

#include <algorithm>
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

// Each model's scheduler now; zeros for a model that is not loaded (nothing can run or wait),
// and for all while the server is loading.
void refresh_runtime_gauges(runtime::Runtime& rt) {
  auto& m = metrics::server_metrics();
  std::vector<runtime::ModelLease> loaded;
  const auto state = rt.state();
  if (state == runtime::State::kReady || state == runtime::State::kDraining) {
    loaded = rt.models().loaded();
  }
  for (const auto& spec : rt.models().specs()) {
    const auto lease = std::find_if(loaded.begin(), loaded.end(),
                                    [&](const auto& l) { return l->name() == spec.name; });
    if (spec.kind == runtime::ModelKind::kEmbedding) {
      scheduler::EmbeddingStats s;
      if (lease != loaded.end()) s = (*lease)->embedding().stats();
      m.set_task_load("embed", spec.name, s.running, s.outstanding - s.running, s.queue_capacity);
    } else if (spec.kind == runtime::ModelKind::kSpeech) {
      scheduler::SpeechStats s;
      if (lease != loaded.end()) s = (*lease)->speech().stats();
      m.set_task_load("speech-transcribe", spec.name, s.active - s.queued, s.queued,
                      s.queue_capacity);
    } else {
      scheduler::SchedulerStats s;
      if (lease != loaded.end()) s = (*lease)->text().stats();
      m.set_task_load("text-gen", spec.name, s.running, s.waiting, s.queue_capacity);
      m.set_kv_cache_usage(spec.name, s.kv_usage);
    }
  }
}

}  // namespace

std::vector<Route> metrics_routes(const Services& services) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& m = metrics::server_metrics();
    m.set_build_info(version(), llama_cpp_version(), whisper_cpp_version(), backend_names());
    const char* library = std::getenv("MMSERVE_NVML_LIBRARY");
    const std::string status = m.start_gpu_metrics(
        library != nullptr && *library != '\0' ? library : metrics::kNvmlLibrary);
    std::fprintf(stderr, "mmserve: %s\n", status.c_str());
  });

  runtime::Runtime& rt = services.runtime;
  return {{"GET", "/metrics", [&rt](const ApiRequest&, ApiResponse& res, Exchange&) {
             refresh_runtime_gauges(rt);
             auto& m = metrics::server_metrics();
             m.set_log_lines_dropped(LogSink::standard_error().dropped());
             res.content_type = metrics::kTextContentType;
             res.body = m.scrape();
           }}};
}

}  // namespace mmserve::http
