#include "python/local_engine.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/model_locator.h"
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

  runtime::ModelSpec spec;
  spec.path = locate_text_model(options.model_path);
  spec.name = std::filesystem::path(spec.path).stem().string();
  spec.parallel = options.parallel;
  spec.ctx_size = options.ctx_size;
  spec.batch_size = options.batch_size;
  spec.gpu_layers = options.gpu_layers;
  spec.pinned = true;
  runtime::RuntimeOptions ro;
  ro.models.push_back(spec);
  ro.registry.queue_size = options.queue_size;
  ro.registry.threads = options.threads;
  ro.registry.unknown_names_use_default = true;
  auto served = std::make_shared<Served>(std::move(ro));
  try {
    served->runtime.load_now();  // loads the model and runs its probe, as the server's readiness
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound || e.code() == ErrorCode::kModelLoad) {
      throw Error(e.code(), e.what(), "model");  // the SDK's option that names the file
    }
    throw;
  }
  const auto lease = served->runtime.acquire(runtime::Task::kTextGen, "");
  const auto& text = lease->text();
  const auto& model = text.model();
  info_.model_id = model.id();
  info_.model_path = model.path();
  info_.architecture = model.summary().architecture;
  info_.n_ctx = lease->context_cells();
  info_.sequence_capacity = text.sequence_capacity();
  info_.parallel = options.parallel;
  info_.has_chat_template = model.has_chat_template();
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
  call.task = runtime::Task::kTextGen;
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
  call.text.style = raw ? pipeline::PromptStyle::kRaw : pipeline::PromptStyle::kInstruct;
  call.text.prompt = input;
  call.text.system = system;
  return submit(std::move(call), options);
}

std::unique_ptr<Completion> LocalEngine::submit_chat(
    const std::vector<engine::ChatMessage>& messages, const TextOptions& options) {
  if (messages.empty()) {
    throw Error(ErrorCode::kInvalidInput, "messages must be a non-empty list", "messages");
  }
  pipeline::Call call;
  call.text.style = pipeline::PromptStyle::kChat;
  for (const auto& m : messages) {
    call.text.messages.push_back({.role = m.role, .parts = {{.value = m.content}}});
  }
  return submit(std::move(call), options);
}

}  // namespace mmserve::python
