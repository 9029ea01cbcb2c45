#include "runtime/runtime.h"

#include <ggml-backend.h>
#include <llama.h>

#include <algorithm>

#include "core/error.h"
#include "engine/text_model.h"
#include "metrics/server_metrics.h"

namespace mmserve::runtime {
namespace {

// Where llama.cpp put the weights: TextModel offloads every layer, and llama.cpp spreads them
// over the GPUs when there are any (else the first integrated GPU), else they stay in host
// memory. Its C API reports no per-device split, so several GPUs are named together.
std::string weights_device() {
  std::string gpus;
  std::string igpu;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    const auto type = ggml_backend_dev_type(dev);
    if (type == GGML_BACKEND_DEVICE_TYPE_GPU) {
      gpus += (gpus.empty() ? "" : ",") + std::string(ggml_backend_dev_name(dev));
    } else if (type == GGML_BACKEND_DEVICE_TYPE_IGPU && igpu.empty()) {
      igpu = ggml_backend_dev_name(dev);
    }
  }
  return !gpus.empty() ? gpus : !igpu.empty() ? igpu : "CPU";
}

// Connects a loaded text scheduler to the process-wide metrics. Called after the probe, so the
// probe is not counted.
void observe_text_metrics(scheduler::TextScheduler& text, const engine::TextModel& model) {
  auto& m = metrics::server_metrics();
  text.set_step_observer([&m](const engine::StepStats& s) { m.record_decode_step(s.sequences); });
  text.set_finish_observer([&m](const scheduler::GenerationOutcome& o) {
    const auto& r = o.result;
    m.record_generation({.task = "text-gen",
                         .queue_seconds = o.queue_ms / 1000,
                         .first_token_seconds = (o.queue_ms + r.prompt_ms) / 1000,
                         .generate_seconds = r.generate_ms / 1000,
                         .prompt_tokens = r.prompt_tokens,
                         .cached_prompt_tokens = r.cached_prompt_tokens,
                         .completion_tokens = r.completion_tokens});
  });
  m.set_model_memory(model.id(), weights_device(),
                     static_cast<double>(llama_model_size(model.raw())));
}

// The split of --threads described in runtime.h.
struct ThreadSplit {
  int32_t text = 0;  // 0 = the engine's default (every core)
  int32_t speech = 0;
};

ThreadSplit split_threads(const RuntimeOptions& o) {
  const bool text = !o.model_path.empty();
  const bool speech = !o.whisper_model_path.empty();
  const int32_t total = o.threads > 0 ? o.threads : engine::default_thread_count();
  if (!speech) return {.text = o.threads};
  if (!text) return {.speech = o.speech_threads > 0 ? o.speech_threads : total};
  const int32_t s = o.speech_threads > 0 ? o.speech_threads : std::max(1, total / 2);
  return {.text = std::max(1, total - s), .speech = s};
}

// Connects the speech scheduler to the process-wide metrics.
void observe_speech_metrics(scheduler::SpeechScheduler& speech) {
  speech.set_observer([](const scheduler::SpeechOutcome& o) {
    if (!o.error) {
      metrics::server_metrics().add_audio_seconds(o.transcript.duration);
    }
  });
}

}  // namespace

const char* state_name(State state) {
  switch (state) {
    case State::kLoading: return "loading";
    case State::kReady: return "ready";
    case State::kFailed: return "failed";
    case State::kDraining: return "draining";
  }
  return "failed";
}

Runtime::Runtime(RuntimeOptions options) : options_(std::move(options)) {}

Runtime::~Runtime() {
  if (loader_.joinable()) loader_.join();
}

void Runtime::start_loading() {
  loader_ = std::thread([this] {
    try {
      load();
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      detail_ = e.what();
      state_.store(State::kFailed);
    }
  });
}

void Runtime::load_now() {
  load();
}

std::unique_ptr<scheduler::SpeechScheduler> Runtime::load_speech(int32_t threads) {
  auto model = engine::SpeechModel::load(options_.whisper_model_path);
  std::shared_ptr<const engine::VadModel> vad;
  if (!options_.vad_model_path.empty()) vad = engine::VadModel::load(options_.vad_model_path);
  std::vector<std::unique_ptr<engine::WindowRunner>> states;
  for (int32_t i = 0; i < std::max(1, options_.speech_parallel); ++i) {
    states.push_back(std::make_unique<engine::SpeechState>(model));
  }
  // Readiness means a real window ran (encoder and a few decoder steps), not only a load.
  const std::vector<float> silence(media::kSpeechSampleRate, 0.0f);
  engine::WindowTask probe;
  probe.samples = silence;
  probe.language = "en";
  probe.fallback = false;
  probe.max_tokens = 4;
  probe.threads = threads;
  try {
    states.front()->run(probe);
  } catch (const Error& e) {
    throw Error(ErrorCode::kModelLoad, std::string("the speech probe failed: ") + e.what());
  }
  auto speech = std::make_unique<scheduler::SpeechScheduler>(
      std::move(states), std::move(vad),
      scheduler::SpeechSchedulerOptions{.threads = threads, .queue_size = options_.queue_size});
  observe_speech_metrics(*speech);
  std::lock_guard lock(mutex_);
  speech_model_ = std::move(model);
  return speech;
}

void Runtime::load() {
  const ThreadSplit threads = split_threads(options_);
  std::unique_ptr<scheduler::SpeechScheduler> speech;
  if (has_speech()) speech = load_speech(threads.speech);
  if (!has_text()) {  // a speech-only server
    std::lock_guard lock(mutex_);
    speech_ = std::move(speech);
    loaded_at_ = std::chrono::system_clock::now();
    State expected = State::kLoading;
    if (!state_.compare_exchange_strong(expected, State::kReady)) speech_->stop_accepting();
    return;
  }
  auto model = engine::TextModel::load(options_.model_path);
  engine::BatchOptions batch;
  batch.n_parallel = std::max(1, options_.parallel);
  batch.n_ctx = options_.ctx_size > 0 ? options_.ctx_size
                                      : batch.n_parallel * std::min(model->n_ctx_train(), 4096);
  batch.n_batch = options_.batch_size;
  batch.threads = threads.text;
  std::shared_ptr<engine::VisionModel> vision;
  if (!options_.mmproj_path.empty()) {
    vision = engine::VisionModel::load(options_.mmproj_path, model, {.threads = threads.text});
  }
  auto text = std::make_unique<scheduler::TextScheduler>(
      std::make_unique<engine::TextBatch>(model, batch, vision),
      scheduler::SchedulerOptions{.queue_size = options_.queue_size});

  text->probe(std::chrono::minutes(5));
  observe_text_metrics(*text, *model);
  std::lock_guard lock(mutex_);
  text_ = std::move(text);
  vision_ = std::move(vision);
  speech_ = std::move(speech);
  loaded_at_ = std::chrono::system_clock::now();
  State expected = State::kLoading;
  if (!state_.compare_exchange_strong(expected, State::kReady)) {
    text_->stop_accepting();
    if (speech_) speech_->stop_accepting();
  }
}

std::string Runtime::detail() const {
  switch (state_.load()) {
    case State::kReady: return {};
    case State::kLoading:
      return "loading the model " +
             (has_text() ? options_.model_path : options_.whisper_model_path);
    case State::kDraining: return "the server is shutting down";
    case State::kFailed: {
      std::lock_guard lock(mutex_);
      return detail_;
    }
  }
  return {};
}

scheduler::TextScheduler& Runtime::text() const {
  if (!has_text()) {
    throw Error(ErrorCode::kModelUnavailable,
                "this server has no text model (it serves speech only; start it with -m "
                "MODEL.gguf for text)",
                "task");
  }
  if (state_.load() == State::kReady) return *text_;  // published before the state turned ready
  std::lock_guard lock(mutex_);
  if (state_.load() == State::kDraining && text_) return *text_;  // it refuses new work itself
  throw Error(
      ErrorCode::kUnavailable,
      "not ready: " +
          (state_.load() == State::kFailed ? detail_ : std::string(state_name(state_.load()))));
}

std::shared_ptr<const engine::VisionModel> Runtime::vision() const {
  if (state_.load() == State::kReady) return vision_;  // published before the state turned ready
  std::lock_guard lock(mutex_);
  return vision_;
}

scheduler::SpeechScheduler& Runtime::speech() const {
  if (!has_speech()) {
    throw Error(ErrorCode::kModelUnavailable,
                "task 'speech-transcribe' needs a speech model (--whisper-model), which this "
                "server has not loaded",
                "task");
  }
  if (state_.load() == State::kReady) return *speech_;  // published before the state turned ready
  std::lock_guard lock(mutex_);
  if (state_.load() == State::kDraining && speech_) return *speech_;  // it refuses new work
  throw Error(
      ErrorCode::kUnavailable,
      "not ready: " +
          (state_.load() == State::kFailed ? detail_ : std::string(state_name(state_.load()))));
}

std::shared_ptr<const engine::SpeechModel> Runtime::speech_model() const {
  std::lock_guard lock(mutex_);
  return speech_ ? speech_model_ : nullptr;
}

void Runtime::begin_drain() {
  std::lock_guard lock(mutex_);
  state_.store(State::kDraining);
  if (text_) text_->stop_accepting();
  if (speech_) speech_->stop_accepting();
}

void Runtime::cancel_all() {
  std::lock_guard lock(mutex_);
  if (text_) text_->cancel_all();
  if (speech_) speech_->cancel_all();
}

}  // namespace mmserve::runtime
