// The metrics mmserve exports, in one process-wide registry, and the calls that move them.
// docs/metrics.md is the reference for every series (name, type, labels, meaning).
//
// Who calls what:
//   - the HTTP edge: record_request() once per inference request, before its last byte is sent;
//   - the runtime, from the scheduler thread: record_generation() per finished generation and
//     record_decode_step() per decode step;
//   - speech and vision: add_audio_seconds() and add_images() per request they serve;
//   - GET /metrics: set_task_load(), set_kv_cache_usage() and the like, then scrape().
//
// Threading: every method is thread-safe (see registry.h); server_metrics() is created on first
// use and lives until the process exits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/thread_annotations.h"
#include "metrics/gpu_metrics.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "metrics/routing_metrics.h"

namespace mmserve::metrics {

// What one finished generation did, as the scheduler saw it.
struct GenerationFacts {
  std::string_view task;           // "text-gen", ...
  std::string_view model;          // the registry's name
  double queue_seconds = 0;        // submitted to started (or to dropped from the queue)
  double first_token_seconds = 0;  // submitted to first token; ignored when no token came
  double generate_seconds = 0;     // first token to last token
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // of prompt_tokens, reused from a previous request's cache
  int64_t completion_tokens = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  Registry& registry() { return registry_; }
  // The privacy router's and the cloud executor's series (routing_metrics.h).
  RoutingMetrics& routing() { return routing_; }

  // One inference request answered: mmserve_requests_total and
  // mmserve_request_duration_seconds. `route` is "local" (served here) or "cloud"; `model` is empty
  // when the request failed before one was chosen.
  void record_request(std::string_view task, std::string_view model, std::string_view endpoint,
                      std::string_view route, int status, double seconds);
  // Token counters, queue wait, time to first token and inter-token latency.
  void record_generation(const GenerationFacts& facts);
  // Sequences that took part in one decode step (mmserve_batch_size).
  void record_decode_step(int sequences);
  // mmserve_lora_switches_total{model}: decode steps that changed a text model's context's LoRA
  // adapters; the reference stays valid (a step observer keeps it).
  Counter& lora_switches(std::string_view model);
  // mmserve_engine_calls_total{model,threads}: text decode steps and whisper windows, by the CPU
  // threads they ran with (the process's threads are lent to whichever models have work).
  Counter& engine_calls(std::string_view model, int32_t threads);
  // For the speech and vision features: audio transcribed, images described.
  void add_audio_seconds(double seconds);
  void add_images(int64_t count);

  // Scrape-time state of a model's scheduler (zeros for a model not loaded).
  void set_task_load(std::string_view task, std::string_view model, int running, int waiting,
                     int queue_capacity);
  void set_kv_cache_usage(std::string_view model, double ratio);
  void set_model_memory(std::string_view model, std::string_view device, double bytes);
  void set_build_info(std::string_view version, std::string_view llama_cpp,
                      std::string_view whisper_cpp, std::string_view backend);
  void set_log_lines_dropped(uint64_t total);
  // A model of the registry loaded, unloaded or failed to load (`event`: "load", "unload",
  // "load_failed"): mmserve_model_events_total; a load also sets mmserve_model_load_seconds.
  void record_model_event(std::string_view model, std::string_view event, double load_seconds);

  // Loads NVML from `library` the first time it is called (later calls do nothing) and returns
  // the status line for the startup log.
  std::string start_gpu_metrics(const std::string& library = kNvmlLibrary);
  // Refreshes the process and GPU series, then renders every series in the text format.
  std::string scrape();

 private:
  Registry registry_;  // first: the references below point into it
  Family<Counter>& requests_;
  Family<Histogram>& request_duration_;
  Family<Histogram>& queue_wait_;
  Histogram& time_to_first_token_;
  Histogram& inter_token_latency_;
  Histogram& batch_size_;
  Family<Counter>& prompt_tokens_;
  Family<Counter>& cached_prompt_tokens_;
  Family<Counter>& generated_tokens_;
  Counter& audio_seconds_;
  Counter& images_;
  Family<Gauge>& requests_running_;
  Family<Gauge>& requests_waiting_;
  Family<Gauge>& queue_capacity_;
  Family<Gauge>& kv_cache_usage_;
  Family<Gauge>& model_memory_;
  Family<Counter>& model_events_;
  Family<Gauge>& model_load_seconds_;
  Family<Gauge>& build_info_;
  Counter& log_lines_dropped_;
  Family<Counter>& lora_switches_;
  Family<Counter>& engine_calls_;
  ProcessMetrics process_;
  RoutingMetrics routing_;
  Mutex gpu_mutex_;
  std::unique_ptr<GpuMetrics> gpu_ GUARDED_BY(gpu_mutex_);  // set once by start_gpu_metrics
};

// The process-wide instance.
ServerMetrics& server_metrics();

}  // namespace mmserve::metrics
