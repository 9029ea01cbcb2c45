#include "runtime/served_model.h"

#include <ggml-backend.h>
#include <llama.h>

#include <algorithm>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "engine/speech_state.h"
#include "engine/text_model.h"
#include "media/audio_decode.h"
#include "metrics/server_metrics.h"

namespace mmserve::runtime {
namespace {

using Clock = std::chrono::steady_clock;

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
void observe_text_metrics(scheduler::TextScheduler& text, const std::string& model) {
  auto& m = metrics::server_metrics();
  text.set_step_observer([&m](const engine::StepStats& s) { m.record_decode_step(s.sequences); });
  text.set_finish_observer([&m, model](const scheduler::GenerationOutcome& o) {
    const auto& r = o.result;
    m.record_generation({.task = "text-gen",
                         .model = model,
                         .queue_seconds = o.queue_ms / 1000,
                         .first_token_seconds = (o.queue_ms + r.prompt_ms) / 1000,
                         .generate_seconds = r.generate_ms / 1000,
                         .prompt_tokens = r.prompt_tokens,
                         .cached_prompt_tokens = r.cached_prompt_tokens,
                         .completion_tokens = r.completion_tokens});
  });
}

void observe_speech_metrics(scheduler::SpeechScheduler& speech) {
  speech.set_observer([](const scheduler::SpeechOutcome& o) {
    if (!o.error) {
      metrics::server_metrics().add_audio_seconds(o.transcript.duration);
    }
  });
}

// The context a text model gets: --ctx-size, else parallel x min(training context, 4096).
int32_t context_cells(const ModelSpec& spec, int64_t n_ctx_train) {
  if (spec.ctx_size > 0) {
    return spec.ctx_size;
  }
  const int64_t train = n_ctx_train > 0 ? n_ctx_train : 4096;
  return static_cast<int32_t>(std::max(1, spec.parallel) * std::min<int64_t>(train, 4096));
}

}  // namespace

int64_t estimate_model_bytes(const ModelSpec& spec) {
  if (spec.kind == ModelKind::kSpeech) {
    const auto shape = engine::check_speech_model_file(spec.path, "path");
    // Per whisper state: the decoder's self-attention cache, the cross-attention cache over the
    // audio, and the encoder's activations (a rule of thumb: 16 floats per audio position and
    // width, what whisper.cpp's compute buffers come to).
    const int64_t kv = int64_t{4} * shape.n_text_layer * shape.n_text_state *
                       (int64_t{shape.n_text_ctx} + shape.n_audio_ctx);
    const int64_t encoder = int64_t{64} * shape.n_audio_ctx * shape.n_audio_state;
    return shape.file_bytes + std::max(1, spec.speech_parallel) * (kv + encoder);
  }
  const auto gguf = engine::inspect_gguf(spec.path);
  const int64_t n_embd = std::max<int64_t>(gguf.n_embd, 0);
  const int64_t n_embd_kv =
      gguf.n_head > 0 && gguf.n_head_kv > 0 ? n_embd / gguf.n_head * gguf.n_head_kv : n_embd;
  const int64_t kv = int64_t{2} * 2 * context_cells(spec, gguf.n_ctx_train) *
                     std::max<int64_t>(gguf.n_layer, 0) * n_embd_kv;  // K and V, f16
  int64_t bytes = static_cast<int64_t>(gguf.tensor_bytes) + kv;
  if (!spec.mmproj_path.empty()) {
    bytes += static_cast<int64_t>(engine::inspect_gguf(spec.mmproj_path).tensor_bytes);
  }
  return bytes;
}

std::shared_ptr<ServedModel> ServedModel::load(const ModelSpec& spec,
                                               const LoadSettings& settings) {
  const auto started = Clock::now();
  std::shared_ptr<ServedModel> served(new ServedModel(spec));
  served->memory_bytes_ =
      settings.memory_bytes > 0 ? settings.memory_bytes : estimate_model_bytes(spec);
  const int32_t threads = spec.threads > 0 ? spec.threads : settings.threads;
  if (spec.kind == ModelKind::kSpeech) {
    auto model = engine::SpeechModel::load(spec.path);
    std::shared_ptr<const engine::VadModel> vad;
    if (!spec.vad_path.empty()) {
      vad = engine::VadModel::load(spec.vad_path);
    }
    std::vector<std::unique_ptr<engine::WindowRunner>> states;
    for (int32_t i = 0; i < std::max(1, spec.speech_parallel); ++i) {
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
    served->speech_ = std::make_unique<scheduler::SpeechScheduler>(
        std::move(states), std::move(vad),
        scheduler::SpeechSchedulerOptions{.threads = std::max(1, threads),
                                          .queue_size = settings.queue_size});
    observe_speech_metrics(*served->speech_);
    served->speech_model_ = std::move(model);
  } else {
    auto model = engine::TextModel::load(spec.path, {.gpu_layers = spec.gpu_layers});
    engine::BatchOptions batch;
    batch.n_parallel = std::max(1, spec.parallel);
    batch.n_ctx = runtime::context_cells(spec, model->n_ctx_train());
    served->context_cells_ = batch.n_ctx;
    batch.n_batch = spec.batch_size;
    batch.threads = threads;
    std::shared_ptr<engine::VisionModel> vision;
    if (!spec.mmproj_path.empty()) {
      vision = engine::VisionModel::load(spec.mmproj_path, model, {.threads = threads});
    }
    auto text = std::make_unique<scheduler::TextScheduler>(
        std::make_unique<engine::TextBatch>(model, batch, vision),
        scheduler::SchedulerOptions{.queue_size = settings.queue_size});
    text->probe(std::chrono::minutes(5));
    observe_text_metrics(*text, spec.name);
    metrics::server_metrics().set_model_memory(spec.name, weights_device(),
                                               static_cast<double>(llama_model_size(model->raw())));
    served->text_ = std::move(text);
    served->vision_ = std::move(vision);
  }
  served->loaded_at_ = std::chrono::system_clock::now();
  served->load_seconds_ = std::chrono::duration<double>(Clock::now() - started).count();
  return served;
}

ServedModel::~ServedModel() {
  // The schedulers' destructors end what is left (nothing: the last lease is gone) and join.
  text_.reset();
  speech_.reset();
  if (spec_.kind == ModelKind::kText) {
    metrics::server_metrics().set_model_memory(spec_.name, weights_device(), 0);
  }
}

scheduler::TextScheduler& ServedModel::text() const {
  if (!text_) {
    throw Error(ErrorCode::kInvalidInput,
                "model '" + spec_.name + "' is a speech model; it does not generate text", "model");
  }
  return *text_;
}

scheduler::SpeechScheduler& ServedModel::speech() const {
  if (!speech_) {
    throw Error(ErrorCode::kInvalidInput,
                "model '" + spec_.name + "' is a text model; it does not transcribe speech",
                "model");
  }
  return *speech_;
}

bool ServedModel::busy() const {
  if (text_) {
    const auto s = text_->stats();
    return s.running > 0 || s.waiting > 0;
  }
  const auto s = speech_->stats();
  return s.active > 0 || s.queued > 0 || s.running > 0;
}

void ServedModel::stop_accepting() {
  if (text_) {
    text_->stop_accepting();
  }
  if (speech_) {
    speech_->stop_accepting();
  }
}

void ServedModel::cancel_all() {
  if (text_) {
    text_->cancel_all();
  }
  if (speech_) {
    speech_->cancel_all();
  }
}

}  // namespace mmserve::runtime
