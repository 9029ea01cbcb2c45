#include "runtime/served_model.h"

#include <ggml-backend.h>
#include <llama.h>

#include <algorithm>

#include "core/error.h"
#include "engine/gguf_inspect.h"
#include "engine/memory_plan.h"
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
  auto& switches = m.lora_switches(model);
  text.set_step_observer([&m, &switches, model](const engine::StepStats& s) {
    m.record_decode_step(s.sequences);
    if (s.adapter_switches > 0) switches.inc();
    if (s.tokens > 0) m.engine_calls(model, s.threads).inc();
  });
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

void observe_speech_metrics(scheduler::SpeechScheduler& speech, const std::string& model) {
  speech.set_observer([model](const scheduler::SpeechOutcome& o) {
    auto& m = metrics::server_metrics();
    if (!o.error) m.add_audio_seconds(o.transcript.duration);
    for (const int32_t threads : o.window_threads) m.engine_calls(model, threads).inc();
  });
}

void observe_embedding_metrics(scheduler::EmbeddingScheduler& embedding, const std::string& model) {
  embedding.set_observer([model](const scheduler::EmbeddingOutcome& o) {
    metrics::server_metrics().record_generation({.task = "embed",
                                                 .model = model,
                                                 .queue_seconds = o.queue_ms / 1000,
                                                 .prompt_tokens = o.ok() ? o.prompt_tokens : 0});
  });
}

// The context a text model gets: --ctx-size, else parallel x min(training context, 4096).
int32_t context_cells(const ModelSpec& spec, int64_t n_ctx_train) {
  return engine::default_context_cells(spec.ctx_size, spec.parallel, n_ctx_train);
}

}  // namespace

int64_t estimate_model_bytes(const ModelSpec& spec) {
  // The one estimate (engine/memory_plan.h, also `mmserve plan`): this model's own peak bytes
  // wherever they sit (RAM or VRAM), without the process baseline the server pays once.
  engine::PlanInput in;
  in.process_baseline = false;
  if (spec.kind == ModelKind::kSpeech) {
    in.speech = engine::check_speech_model_file(spec.path, "path");
    in.speech_parallel = spec.speech_parallel;
  } else if (spec.kind == ModelKind::kEmbedding) {
    in.text = engine::inspect_gguf(spec.path);
    engine::plan_as_embedding(in, spec.ctx_size, spec.batch_size);
  } else {
    in.text = engine::inspect_gguf(spec.path);
    if (!spec.mmproj_path.empty()) in.projector = engine::inspect_gguf(spec.mmproj_path);
    in.parallel = spec.parallel;
    in.ctx_size = context_cells(spec, in.text->n_ctx_train);
    in.batch_size = spec.batch_size;
  }
  return static_cast<int64_t>(engine::plan_memory(in).ram);
}

std::shared_ptr<ServedModel> ServedModel::load(const ModelSpec& spec,
                                               const LoadSettings& settings) {
  const auto started = Clock::now();
  std::shared_ptr<ServedModel> served(new ServedModel(spec));
  served->memory_bytes_ =
      settings.memory_bytes > 0 ? settings.memory_bytes : estimate_model_bytes(spec);
  const int32_t threads = spec.threads > 0 ? spec.threads : settings.threads;
  // Threads lent by the process while other models are idle, unless the spec fixes its own.
  std::shared_ptr<scheduler::CpuShare::Tenant> cpu;
  if (settings.cpu_share && spec.threads <= 0) cpu = settings.cpu_share->tenant(threads);
  if (spec.kind == ModelKind::kEmbedding) {
    auto model = engine::EmbeddingModel::load(spec.path, {.max_input_tokens = spec.ctx_size,
                                                          .batch_tokens = spec.batch_size,
                                                          .threads = threads,
                                                          .gpu_layers = spec.gpu_layers});
    const engine::EmbeddingModel* raw = model.get();
    const int64_t weights = static_cast<int64_t>(llama_model_size(raw->model().raw()));
    auto embedding = std::make_unique<scheduler::EmbeddingScheduler>(
        std::move(model), scheduler::EmbeddingSchedulerOptions{.queue_size = settings.queue_size});
    // Readiness means a real decode ran through the pooling, not only a load.
    embedding->probe(raw->tokenize("Hello"), std::chrono::minutes(5));
    observe_embedding_metrics(*embedding, spec.name);
    metrics::server_metrics().set_model_memory(spec.name, weights_device(),
                                               static_cast<double>(weights));
    served->embedding_model_ = raw;
    served->embedding_ = std::move(embedding);
  } else if (spec.kind == ModelKind::kSpeech) {
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
        scheduler::SpeechSchedulerOptions{
            .threads = std::max(1, threads),
            .min_threads_per_window = std::max(1, settings.speech_window_threads),
            .queue_size = settings.queue_size,
            .fallback = settings.speech_fallback,
            .cpu = std::move(cpu)});
    observe_speech_metrics(*served->speech_, spec.name);
    served->speech_model_ = std::move(model);
  } else {
    auto model = engine::TextModel::load(
        spec.path, {.gpu_layers = spec.gpu_layers, .cpu_moe_layers = spec.cpu_moe_layers});
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
        scheduler::SchedulerOptions{.queue_size = settings.queue_size, .cpu = std::move(cpu)});
    text->probe(std::chrono::minutes(5));
    observe_text_metrics(*text, spec.name);
    metrics::server_metrics().set_model_memory(spec.name, weights_device(),
                                               static_cast<double>(llama_model_size(model->raw())));
    served->loras_ = std::make_unique<LoraTable>(model, spec.name);
    for (const auto& lora : spec.loras) {
      try {
        served->loras_->load(lora);
      } catch (const Error& e) {
        throw Error(e.code(), "model '" + spec.name + "': adapter '" + lora.name + "': " + e.what(),
                    "lora");
      }
    }
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
  loras_.reset();  // after the scheduler, whose batch may still hold one
  speech_.reset();
  embedding_.reset();
  if (spec_.kind != ModelKind::kSpeech) {
    metrics::server_metrics().set_model_memory(spec_.name, weights_device(), 0);
  }
}

scheduler::TextScheduler& ServedModel::text() const {
  if (!text_) {
    throw Error(ErrorCode::kInvalidInput,
                "model '" + spec_.name + "' is " +
                    (embedding_ ? "an embedding model" : "a speech model") +
                    "; it does not generate text",
                "model");
  }
  return *text_;
}

LoraTable& ServedModel::loras() const {
  if (!loras_) {
    throw Error(ErrorCode::kInvalidInput,
                "model '" + spec_.name + "' is a " + model_kind_name(spec_.kind) +
                    " model; LoRA adapters are for text models",
                "model");
  }
  return *loras_;
}

scheduler::SpeechScheduler& ServedModel::speech() const {
  if (!speech_) {
    throw Error(ErrorCode::kInvalidInput,
                "model '" + spec_.name + "' is a text model; it does not transcribe speech",
                "model");
  }
  return *speech_;
}

scheduler::EmbeddingScheduler& ServedModel::embedding() const {
  if (!embedding_) {
    throw Error(ErrorCode::kModelUnavailable,
                "model '" + spec_.name + "' is a " + model_kind_name(spec_.kind) +
                    " model; it does not embed (serve an embedding model: --embedding-model)",
                "model");
  }
  return *embedding_;
}

const engine::EmbeddingModel& ServedModel::embedding_model() const {
  embedding();  // the same refusal
  return *embedding_model_;
}

bool ServedModel::busy() const {
  if (text_) {
    const auto s = text_->stats();
    return s.running > 0 || s.waiting > 0;
  }
  if (embedding_) return embedding_->stats().outstanding > 0;
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
  if (embedding_) embedding_->stop_accepting();
}

void ServedModel::cancel_all() {
  if (text_) {
    text_->cancel_all();
  }
  if (speech_) {
    speech_->cancel_all();
  }
  if (embedding_) embedding_->cancel_all();
}

}  // namespace mmserve::runtime
