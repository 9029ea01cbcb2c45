#include "python/local_engine.h"

#include <algorithm>

#include "core/error.h"
#include "core/model_locator.h"
#include "engine/sampling.h"

namespace mmserve::python {
namespace {

std::atomic<int> g_live{0};

// Far enough that it never fires; local callers stop a request by cancelling it.
constexpr auto kNoDeadline = std::chrono::hours(24 * 365);

void require_positive(int32_t value, const char* name, int32_t min) {
  if (value < min) {
    throw Error(ErrorCode::kInvalidInput,
                std::string(name) + " must be at least " + std::to_string(min), name);
  }
}

// The same checks and defaults as the server's read_generation_params (http/text_params.cpp).
engine::GenerationRequest make_request(std::vector<engine::Token> prompt, const TextOptions& o) {
  engine::GenerationRequest r;
  r.prompt = std::move(prompt);
  auto& s = r.sampling;
  if (o.temperature) s.temperature = static_cast<float>(*o.temperature);
  if (o.top_p) s.top_p = static_cast<float>(*o.top_p);
  if (o.min_p) s.min_p = static_cast<float>(*o.min_p);
  if (o.repeat_penalty) s.repeat_penalty = static_cast<float>(*o.repeat_penalty);
  if (o.top_k) {
    if (*o.top_k < 0 || *o.top_k > INT32_MAX)
      throw Error(ErrorCode::kInvalidInput, "top_k must be >= 0", "top_k");
    s.top_k = static_cast<int32_t>(*o.top_k);
  }
  if (o.seed) s.seed = static_cast<uint32_t>(static_cast<uint64_t>(*o.seed) % 0xFFFFFFFFULL);
  if (o.stop.size() > 16)
    throw Error(ErrorCode::kInvalidInput, "stop allows at most 16 entries", "stop");
  r.stop = o.stop;
  r.ignore_eos = o.ignore_eos;
  r.max_tokens = 0;
  if (o.max_tokens) {
    if (*o.max_tokens < 1 || *o.max_tokens > 1'000'000) {
      throw Error(
          ErrorCode::kInvalidInput,
          "max_tokens must be between 1 and the context size, got " + std::to_string(*o.max_tokens),
          "max_tokens");
    }
    r.max_tokens = static_cast<int32_t>(*o.max_tokens);
  }
  engine::validate(s);
  return r;
}

}  // namespace

Completion::Completion(std::shared_ptr<scheduler::Generation> generation,
                       std::shared_ptr<const std::atomic<bool>> engine_closed)
    : generation_(std::move(generation)), engine_closed_(std::move(engine_closed)) {}

Completion::~Completion() {
  if (!generation_->finished()) generation_->cancel();
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
  require_positive(options.queue_size, "queue_size", 1);  // the probe below goes through it

  const std::string path = locate_text_model(options.model_path);
  auto model = engine::TextModel::load(path, {.gpu_layers = options.gpu_layers});
  engine::BatchOptions batch;
  batch.n_parallel = options.parallel;
  batch.n_ctx = options.ctx_size > 0 ? options.ctx_size
                                     : options.parallel * std::min(model->n_ctx_train(), 4096);
  batch.n_batch = options.batch_size;
  batch.threads = options.threads;
  auto text = std::make_shared<scheduler::TextScheduler>(
      std::make_unique<engine::TextBatch>(model, batch),
      scheduler::SchedulerOptions{.queue_size = options.queue_size});

  text->probe(std::chrono::duration_cast<std::chrono::milliseconds>(
      kNoDeadline));  // as the server's readiness

  info_.model_id = model->id();
  info_.model_path = model->path();
  info_.architecture = model->summary().architecture;
  info_.n_ctx = batch.n_ctx;
  info_.sequence_capacity = text->sequence_capacity();
  info_.parallel = options.parallel;
  info_.has_chat_template = model->has_chat_template();
  text_ = std::move(text);
  g_live.fetch_add(1);
}

LocalEngine::~LocalEngine() {
  close();
}

int LocalEngine::live_count() {
  return g_live.load();
}

void LocalEngine::close() {
  std::shared_ptr<scheduler::TextScheduler> text;
  {
    std::lock_guard lock(mutex_);
    if (!text_) return;
    closed_->store(true);
    text.swap(text_);
    g_live.fetch_sub(1);
  }
  // Outside the lock: the scheduler's destructor cancels its requests and joins its thread. A
  // submit racing with close may still hold a reference; the last one frees the model.
  text.reset();
}

std::shared_ptr<scheduler::TextScheduler> LocalEngine::scheduler() const {
  std::lock_guard lock(mutex_);
  if (!text_) {
    throw Error(ErrorCode::kModelUnavailable, "the model was closed; create a new one", "model");
  }
  return text_;
}

EngineInfo LocalEngine::info() const {
  scheduler();  // throws once closed
  return info_;
}

std::unique_ptr<Completion> LocalEngine::submit(std::shared_ptr<scheduler::TextScheduler> text,
                                                std::vector<engine::Token> prompt,
                                                const TextOptions& options) {
  engine::GenerationRequest request = make_request(std::move(prompt), options);
  auto generation =
      text->submit(std::move(request), scheduler::Generation::Clock::now() + kNoDeadline);
  return std::make_unique<Completion>(std::move(generation), closed_);
}

std::unique_ptr<Completion> LocalEngine::submit_text(const std::string& input, bool raw,
                                                     const std::optional<std::string>& system,
                                                     const TextOptions& options) {
  if (input.empty()) throw Error(ErrorCode::kInvalidInput, "the prompt is empty", "prompt");
  auto text = scheduler();
  const auto& model = text->model();
  std::vector<engine::Token> prompt;
  if (model.has_chat_template() && !raw) {
    std::vector<engine::ChatMessage> messages;
    if (system) messages.push_back({"system", *system});
    messages.push_back({"user", input});
    prompt = model.tokenize(model.apply_chat_template(messages), true, true);
  } else {
    prompt = model.tokenize(input, true, false);
  }
  return submit(std::move(text), std::move(prompt), options);
}

std::unique_ptr<Completion> LocalEngine::submit_chat(
    const std::vector<engine::ChatMessage>& messages, const TextOptions& options) {
  if (messages.empty()) {
    throw Error(ErrorCode::kInvalidInput, "messages must be a non-empty list", "messages");
  }
  auto text = scheduler();
  const auto& model = text->model();
  auto prompt = model.tokenize(model.apply_chat_template(messages, "chatml"), true, true);
  return submit(std::move(text), std::move(prompt), options);
}

}  // namespace mmserve::python
