#include "python/local_engine.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/model_locator.h"
#include "engine/vision_model.h"
#include "executors/local/local_executor.h"
#include "pipeline/pipeline.h"
#include "runtime/runtime.h"

namespace mmserve::python {

// One loaded engine: a runtime holding the one model, and the pipeline that runs calls on it
// (no stages: an in-process caller is already inside the trust boundary).
struct Served {
  explicit Served(runtime::RuntimeOptions options) : runtime(std::move(options)) {
    pipeline.add_executor(std::make_unique<executors::LocalExecutor>(runtime));
  }
  runtime::Runtime runtime;
  pipeline::Pipeline pipeline;
};

namespace {

std::atomic<int> g_live{0};

void require_positive(int32_t value, const char* name, int32_t min) {
  if (value < min) {
    throw Error(ErrorCode::kInvalidInput,
                std::string(name) + " must be at least " + std::to_string(min), name);
  }
}

void require_file(const std::string& path, const char* name) {
  if (!std::filesystem::is_regular_file(path)) {
    throw Error(ErrorCode::kNotFound, std::string(name) + " file not found: " + path, name);
  }
}

// The runtime of `options`: the text model (with its projector) and the speech model, pinned,
// answering to any name, as a single-model server started with -m/--mmproj/--whisper-model.
runtime::RuntimeOptions runtime_options(const EngineOptions& options) {
  const bool from_dir = options.model_path.empty() && text_model_from_models_dir();
  std::string whisper = options.whisper_path.value_or(from_dir ? find_whisper_in_models_dir() : "");
  std::string text;
  if (options.model_path.empty() && !whisper.empty()) {
    try {  // with a speech model, a text model is optional (as `serve --whisper-model`)
      text = locate_text_model("");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
  } else {
    text = locate_text_model(options.model_path);
  }
  const std::string mmproj =
      options.mmproj_path.value_or(from_dir && !text.empty() ? find_projector_in_models_dir() : "");
  if (!mmproj.empty() && text.empty()) {
    throw Error(ErrorCode::kInvalidInput, "mmproj needs a text model (model)", "mmproj");
  }
  runtime::RuntimeOptions ro;
  if (!text.empty()) {
    runtime::ModelSpec spec;
    spec.path = text;
    spec.name = std::filesystem::path(text).stem().string();
    if (!mmproj.empty()) {
      require_file(mmproj, "mmproj");
      spec.mmproj_path = mmproj;
    }
    spec.parallel = options.parallel;
    spec.ctx_size = options.ctx_size;
    spec.batch_size = options.batch_size;
    spec.gpu_layers = options.gpu_layers;
    spec.pinned = true;
    ro.models.push_back(std::move(spec));
  }
  if (!whisper.empty()) {
    require_file(whisper, "whisper_model");
    runtime::ModelSpec spec;
    spec.kind = runtime::ModelKind::kSpeech;
    spec.path = whisper;
    spec.name = std::filesystem::path(whisper).stem().string();
    if (!ro.models.empty() && ro.models.front().name == spec.name) spec.name += "-speech";
    if (!options.vad_path.empty()) {
      require_file(options.vad_path, "vad_model");
      spec.vad_path = options.vad_path;
    }
    spec.speech_parallel = options.speech_parallel;
    spec.gpu_layers = options.gpu_layers;
    spec.pinned = true;
    ro.models.push_back(std::move(spec));
  }
  ro.registry.queue_size = options.queue_size;
  ro.registry.threads = options.threads;
  ro.registry.speech_threads = options.speech_threads;
  ro.registry.unknown_names_use_default = true;
  return ro;
}

// The SDK's option that names the file a load failed on (the engine names the server's flags).
const char* option_of(const Error& e, const std::vector<runtime::ModelSpec>& specs) {
  if (e.field() == "mmproj") return "mmproj";
  if (e.field() == "whisper-model") return "whisper_model";
  if (e.field() == "vad-model") return "vad_model";
  const std::string what = e.what();
  for (const auto& spec : specs) {
    if (spec.kind != runtime::ModelKind::kSpeech) continue;
    if (!spec.vad_path.empty() && what.find(spec.vad_path) != std::string::npos) return "vad_model";
    if (what.find(spec.path) != std::string::npos) return "whisper_model";
  }
  return "model";
}

}  // namespace

Completion::Completion(std::shared_ptr<scheduler::Generation> generation,
                       std::shared_ptr<const std::atomic<bool>> engine_closed)
    : generation_(std::move(generation)), engine_closed_(std::move(engine_closed)) {}

Completion::~Completion() {
  if (!generation_->finished()) {
    generation_->cancel();
  }
}

std::string Completion::next(std::chrono::milliseconds wait, bool& finished) {
  return generation_->take_text(wait, finished);
}

void Completion::cancel() {
  generation_->cancel();
}

CompletionResult Completion::result() const {
  if (!generation_->finished()) {
    throw Error(ErrorCode::kInternal, "result() called before the completion finished");
  }
  const auto& o = generation_->wait();
  if (o.error) {
    if (o.error->code() != ErrorCode::kTimeout && engine_closed_->load()) {
      throw Error(ErrorCode::kModelUnavailable, "the model was closed while generating", "model");
    }
    throw *o.error;
  }
  CompletionResult r;
  r.text = o.result.text;
  r.finish_reason = engine::finish_reason_name(o.result.reason);
  r.prompt_tokens = o.result.prompt_tokens;
  r.completion_tokens = o.result.completion_tokens;
  r.queue_ms = o.queue_ms;
  r.prompt_ms = o.result.prompt_ms;
  r.generate_ms = o.result.generate_ms;
  return r;
}

LocalEngine::LocalEngine(const EngineOptions& options) {
  require_positive(options.parallel, "parallel", 1);
  require_positive(options.threads, "threads", 0);
  require_positive(options.ctx_size, "ctx_size", 0);
  require_positive(options.batch_size, "batch_size", 1);
  require_positive(options.queue_size, "queue_size", 1);
  require_positive(options.speech_threads, "speech_threads", 0);
  require_positive(options.speech_parallel, "speech_parallel", 1);

  auto ro = runtime_options(options);
  const auto specs = ro.models;
  auto served = std::make_shared<Served>(std::move(ro));
  try {
    // Loads the models and runs their probes, as the server's readiness does.
    served->runtime.load_now();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kModelLoad) {
      throw Error(e.code(), e.what(), option_of(e, specs));  // the SDK's option naming the file
    }
    throw;
  }
  info_.parallel = options.parallel;
  if (served->runtime.has_text()) {
    const auto lease = served->runtime.acquire(runtime::Task::kTextGen, "");
    const auto& text = lease->text();
    const auto& model = text.model();
    info_.model_id = model.id();
    info_.model_path = model.path();
    info_.architecture = model.summary().architecture;
    info_.n_ctx = lease->context_cells();
    info_.sequence_capacity = text.sequence_capacity();
    info_.has_chat_template = model.has_chat_template();
    info_.text = true;
    if (lease->vision()) {
      info_.vision = true;
      info_.mmproj_path = lease->vision()->path();
    }
  }
  if (served->runtime.has_speech()) {
    const auto lease = served->runtime.acquire(runtime::Task::kSpeechTranscribe, "");
    info_.speech = true;
    info_.whisper_path = lease->spec().path;
    info_.whisper_id = lease->speech_model()->id();
  }
  served_ = std::move(served);
  g_live.fetch_add(1);
}

LocalEngine::~LocalEngine() {
  close();
}

int LocalEngine::live_count() {
  return g_live.load();
}

void LocalEngine::close() {
  std::shared_ptr<Served> served;
  {
    MutexLock lock(mutex_);
    if (!served_) {
      return;
    }
    closed_->store(true);
    served.swap(served_);
    g_live.fetch_sub(1);
  }
  // Outside the lock: ending what runs, then the runtime's destructor frees the model and joins
  // its scheduler. A submit racing with close may still hold a reference; the last one frees it.
  served->runtime.begin_drain();
  served->runtime.cancel_all();
  served.reset();
}

std::shared_ptr<Served> LocalEngine::served() const {
  MutexLock lock(mutex_);
  if (!served_) {
    throw Error(ErrorCode::kModelUnavailable, "the model was closed; create a new one", "model");
  }
  return served_;
}

EngineInfo LocalEngine::info() const {
  served();  // throws once closed
  return info_;
}

std::unique_ptr<Completion> LocalEngine::submit(pipeline::Call call, const TextOptions& options) {
  pipeline::apply_generation_params(options, "", call.generation);
  const auto served = this->served();
  call.executor = served->pipeline.default_executor();
  const pipeline::Submission s = served->pipeline.submit(call);
  // The Completion keeps the mailbox only: close() must be able to free the model under it.
  return std::make_unique<Completion>(s.generation, closed_);
}

std::unique_ptr<Completion> LocalEngine::submit_text(const std::string& input, bool raw,
                                                     const std::optional<std::string>& system,
                                                     const TextOptions& options) {
  if (input.empty()) {
    throw Error(ErrorCode::kInvalidInput, "the prompt is empty", "prompt");
  }
  pipeline::Call call;
  call.task = runtime::Task::kTextGen;
  call.text.style = raw ? pipeline::PromptStyle::kRaw : pipeline::PromptStyle::kInstruct;
  call.text.prompt = input;
  call.text.system = system;
  return submit(std::move(call), options);
}

std::unique_ptr<Completion> LocalEngine::submit_chat(const std::vector<pipeline::Message>& messages,
                                                     const TextOptions& options) {
  if (messages.empty()) {
    throw Error(ErrorCode::kInvalidInput, "messages must be a non-empty list", "messages");
  }
  pipeline::Call call;
  call.task = runtime::Task::kTextGen;
  call.text.style = pipeline::PromptStyle::kChat;
  call.text.messages = messages;
  return submit(std::move(call), options);
}

std::unique_ptr<Completion> LocalEngine::submit_caption(std::string image,
                                                        const std::optional<std::string>& prompt,
                                                        bool raw,
                                                        const std::optional<std::string>& system,
                                                        const TextOptions& options) {
  pipeline::Call call;
  call.task = runtime::Task::kImageCaption;
  call.text.style = raw ? pipeline::PromptStyle::kRaw : pipeline::PromptStyle::kInstruct;
  call.text.prompt = prompt.value_or(engine::kDefaultCaptionPrompt);
  call.text.system = system;
  call.image = pipeline::ImageInput{.data = std::move(image), .is_bytes = true, .field = "image"};
  return submit(std::move(call), options);
}

std::unique_ptr<Transcription> LocalEngine::submit_transcription(std::string audio,
                                                                 const SpeechOptions& options) {
  const auto served = this->served();
  pipeline::Call call;
  call.task = runtime::Task::kSpeechTranscribe;
  call.speech = options;
  call.speech.timestamps = options.timestamps || options.words;
  call.audio = pipeline::AudioInput{.data = std::move(audio),
                                    .is_bytes = true,
                                    .field = "audio",
                                    .language_field = "language",
                                    .translate_field = "translate"};
  call.executor = served->pipeline.default_executor();
  const pipeline::Submission s = served->pipeline.submit(call);
  return std::make_unique<Transcription>(s.speech, closed_);
}

Transcription::Transcription(std::shared_ptr<scheduler::SpeechJob> job,
                             std::shared_ptr<const std::atomic<bool>> engine_closed)
    : job_(std::move(job)), engine_closed_(std::move(engine_closed)) {}

Transcription::~Transcription() {
  if (!job_->finished()) {
    job_->cancel();
  }
}

bool Transcription::wait(std::chrono::milliseconds wait) {
  return job_->wait_for(wait);
}

void Transcription::cancel() {
  job_->cancel();
}

engine::Transcript Transcription::result() const {
  if (!job_->finished()) {
    throw Error(ErrorCode::kInternal, "result() called before the transcription finished");
  }
  const auto& o = job_->wait();
  if (o.error) {
    if (o.error->code() != ErrorCode::kTimeout && engine_closed_->load()) {
      throw Error(ErrorCode::kModelUnavailable, "the model was closed while transcribing", "model");
    }
    throw *o.error;
  }
  return o.transcript;
}

}  // namespace mmserve::python
