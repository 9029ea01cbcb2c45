#include "metrics/server_metrics.h"

#include <algorithm>

namespace mmserve::metrics {
namespace {

// Bucket bounds, in seconds unless said otherwise. Generation requests run from milliseconds
// (a tiny model, a few tokens) to minutes (a long answer on a CPU), so the ranges are wide.
std::vector<double> request_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};
}
std::vector<double> queue_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}
std::vector<double> first_token_buckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
          0.75,  1,     2.5,  5,     7.5,  10,    20,  40,   80};
}
std::vector<double> inter_token_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
          0.15,   0.2,   0.3,    0.4,   0.5,  0.75,  1,    2.5};
}
// Sequences per decode step: every small count, then powers of two up to 512.
std::vector<double> batch_buckets() {
  return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512};
}

}  // namespace

ServerMetrics::ServerMetrics()
    : requests_(registry_.counter(
          "mmserve_requests_total",
          "Inference requests answered, by task, model (\"none\" before one was chosen), "
          "endpoint, route (local: served here, cloud: the cloud endpoint) and HTTP status.",
          {"task", "model", "endpoint", "route", "status"})),
      request_duration_(registry_.histogram(
          "mmserve_request_duration_seconds",
          "Time from a request's headers being read to its response being complete.",
          request_buckets(), {"task", "model"})),
      queue_wait_(registry_.histogram(
          "mmserve_queue_wait_seconds",
          "Time a generation waited in the queue before it started (or was dropped).",
          queue_buckets(), {"task", "model"})),
      time_to_first_token_(registry_
                               .histogram("mmserve_time_to_first_token_seconds",
                                          "Time from a generation being queued to its first "
                                          "token, queue wait included.",
                                          first_token_buckets())
                               .labels({})),
      inter_token_latency_(registry_
                               .histogram("mmserve_inter_token_latency_seconds",
                                          "Time between consecutive generated tokens: observed "
                                          "once per token after the first, with the mean "
                                          "interval of its generation.",
                                          inter_token_buckets())
                               .labels({})),
      batch_size_(registry_
                      .histogram("mmserve_batch_size",
                                 "Sequences decoded together in one decode step.", batch_buckets())
                      .labels({})),
      prompt_tokens_(registry_.counter(
          "mmserve_prompt_tokens_total",
          "Prompt tokens of finished generations, cached ones included, by model.", {"model"})),
      cached_prompt_tokens_(registry_.counter("mmserve_cached_prompt_tokens_total",
                                              "Prompt tokens reused from a previous request's KV "
                                              "cache instead of being computed, by model.",
                                              {"model"})),
      generated_tokens_(registry_.counter("mmserve_generated_tokens_total",
                                          "Tokens generated, by model.", {"model"})),
      audio_seconds_(registry_
                         .counter("mmserve_audio_seconds_total",
                                  "Seconds of audio received for transcription.")
                         .labels({})),
      images_(
          registry_.counter("mmserve_images_total", "Images received for description.").labels({})),
      requests_running_(registry_.gauge("mmserve_requests_running",
                                        "Requests being served right now.", {"task", "model"})),
      requests_waiting_(registry_.gauge(
          "mmserve_requests_waiting",
          "Requests queued for a free sequence: the autoscaling signal.", {"task", "model"})),
      queue_capacity_(
          registry_.gauge("mmserve_queue_capacity",
                          "Most requests that may wait (--queue-size); more are refused with 429.",
                          {"task", "model"})),
      kv_cache_usage_(registry_.gauge("mmserve_kv_cache_usage_ratio",
                                      "Fraction of a text model's KV cache cells reserved by "
                                      "running sequences or held by idle prefix caches.",
                                      {"model"})),
      model_memory_(registry_.gauge("mmserve_model_memory_bytes",
                                    "Memory taken by a loaded model's weights, by device.",
                                    {"model", "device"})),
      model_events_(registry_.counter(
          "mmserve_model_events_total",
          "Models of the registry loaded, unloaded (for room or by an admin) or failed to load.",
          {"model", "event"})),
      model_load_seconds_(registry_.gauge("mmserve_model_load_seconds",
                                          "How long the last load of a model took (files, "
                                          "scheduler and readiness probe).",
                                          {"model"})),
      build_info_(registry_.gauge(
          "mmserve_build_info",
          "Versions of mmserve and of the engines it runs, and the ggml backends; always 1.",
          {"version", "llama_cpp", "whisper_cpp", "backend"})),
      log_lines_dropped_(registry_
                             .counter("mmserve_log_lines_dropped_total",
                                      "Request log lines dropped because stderr could not keep "
                                      "up.")
                             .labels({})),
      lora_switches_(registry_.counter("mmserve_lora_switches_total",
                                       "Decode steps that changed a text model's LoRA adapters "
                                       "(requests on different adapters take turns), by model.",
                                       {"model"})),
      engine_calls_(registry_.counter("mmserve_engine_calls_total",
                                      "Text decode steps and speech windows, by model and by the "
                                      "CPU threads they ran with (threads are lent to whichever "
                                      "models have work).",
                                      {"model", "threads"})),
      process_(registry_),
      routing_(registry_) {}

void ServerMetrics::record_request(std::string_view task, std::string_view model,
                                   std::string_view endpoint, std::string_view route, int status,
                                   double seconds) {
  const std::string t(task);
  const std::string m(model.empty() ? "none" : model);
  requests_.labels({t, m, std::string(endpoint), std::string(route), std::to_string(status)}).inc();
  request_duration_.labels({t, m}).observe(seconds);
}

void ServerMetrics::record_generation(const GenerationFacts& f) {
  const std::vector<std::string> model = {std::string(f.model)};
  queue_wait_.labels({std::string(f.task), model[0]}).observe(f.queue_seconds);
  prompt_tokens_.labels(model).inc(static_cast<double>(f.prompt_tokens));
  cached_prompt_tokens_.labels(model).inc(static_cast<double>(f.cached_prompt_tokens));
  generated_tokens_.labels(model).inc(static_cast<double>(f.completion_tokens));
  if (f.completion_tokens > 0) time_to_first_token_.observe(f.first_token_seconds);
  if (f.completion_tokens > 1) {
    // The engine times a generation as a whole, so each of its intervals is counted with the
    // generation's mean: _sum and _count are exact, the spread within one request is lost.
    const auto intervals = static_cast<uint64_t>(f.completion_tokens - 1);
    inter_token_latency_.observe(f.generate_seconds / static_cast<double>(intervals), intervals);
  }
}

void ServerMetrics::record_decode_step(int sequences) {
  if (sequences > 0) batch_size_.observe(sequences);
}

Counter& ServerMetrics::lora_switches(std::string_view model) {
  return lora_switches_.labels({std::string(model)});
}

Counter& ServerMetrics::engine_calls(std::string_view model, int32_t threads) {
  return engine_calls_.labels({std::string(model), std::to_string(threads)});
}

void ServerMetrics::add_audio_seconds(double seconds) {
  audio_seconds_.inc(seconds);
}

void ServerMetrics::add_images(int64_t count) {
  images_.inc(static_cast<double>(count));
}

void ServerMetrics::set_task_load(std::string_view task, std::string_view model, int running,
                                  int waiting, int queue_capacity) {
  const std::vector<std::string> labels = {std::string(task), std::string(model)};
  requests_running_.labels(labels).set(running);
  requests_waiting_.labels(labels).set(waiting);
  queue_capacity_.labels(labels).set(queue_capacity);
}

void ServerMetrics::set_kv_cache_usage(std::string_view model, double ratio) {
  kv_cache_usage_.labels({std::string(model)}).set(ratio);
}

void ServerMetrics::set_model_memory(std::string_view model, std::string_view device,
                                     double bytes) {
  model_memory_.labels({std::string(model), std::string(device)}).set(bytes);
}

void ServerMetrics::record_model_event(std::string_view model, std::string_view event,
                                       double load_seconds) {
  model_events_.labels({std::string(model), std::string(event)}).inc();
  if (event == "load") model_load_seconds_.labels({std::string(model)}).set(load_seconds);
}

void ServerMetrics::set_build_info(std::string_view version, std::string_view llama_cpp,
                                   std::string_view whisper_cpp, std::string_view backend) {
  build_info_
      .labels({std::string(version), std::string(llama_cpp), std::string(whisper_cpp),
               std::string(backend)})
      .set(1);
}

void ServerMetrics::set_log_lines_dropped(uint64_t total) {
  log_lines_dropped_.mirror(static_cast<double>(total));
}

std::string ServerMetrics::start_gpu_metrics(const std::string& library) {
  MutexLock lock(gpu_mutex_);
  if (!gpu_) {
    gpu_ = std::make_unique<GpuMetrics>(library);
    gpu_->start(registry_);
  }
  return gpu_->status();
}

std::string ServerMetrics::scrape() {
  process_.refresh();
  {
    MutexLock lock(gpu_mutex_);
    if (gpu_) gpu_->refresh();
  }
  return registry_.render();
}

ServerMetrics& server_metrics() {
  // Never destroyed: worker threads may still record while the process exits.
  static ServerMetrics* instance = new ServerMetrics();
  return *instance;
}

}  // namespace mmserve::metrics
