#include "runtime/runtime.h"

#include <algorithm>

#include "core/error.h"
#include "engine/text_model.h"

namespace mmserve::runtime {

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

void Runtime::load() {
  auto model = engine::TextModel::load(options_.model_path);
  engine::BatchOptions batch;
  batch.n_parallel = std::max(1, options_.parallel);
  batch.n_ctx = options_.ctx_size > 0 ? options_.ctx_size
                                      : batch.n_parallel * std::min(model->n_ctx_train(), 4096);
  batch.n_batch = options_.batch_size;
  batch.threads = options_.threads;
  auto text = std::make_unique<scheduler::TextScheduler>(
      std::make_unique<engine::TextBatch>(model, batch),
      scheduler::SchedulerOptions{.queue_size = options_.queue_size});

  // Readiness means a real decode worked, not only that the file loaded.
  engine::GenerationRequest probe;
  probe.prompt = model->tokenize("Hello", true, false);
  probe.max_tokens = 1;
  probe.sampling.temperature = 0;
  probe.ignore_eos = true;
  const auto outcome =
      text->submit(std::move(probe), scheduler::Generation::Clock::now() + std::chrono::minutes(5))
          ->wait();
  if (outcome.result.reason == engine::FinishReason::kError ||
      outcome.result.completion_tokens != 1) {
    throw Error(ErrorCode::kModelLoad, "the probe decode failed: " + outcome.result.error);
  }
  std::lock_guard lock(mutex_);
  text_ = std::move(text);
  loaded_at_ = std::chrono::system_clock::now();
  State expected = State::kLoading;
  if (!state_.compare_exchange_strong(expected, State::kReady)) text_->stop_accepting();
}

std::string Runtime::detail() const {
  switch (state_.load()) {
    case State::kReady: return {};
    case State::kLoading: return "loading the model " + options_.model_path;
    case State::kDraining: return "the server is shutting down";
    case State::kFailed: {
      std::lock_guard lock(mutex_);
      return detail_;
    }
  }
  return {};
}

scheduler::TextScheduler& Runtime::text() const {
  if (state_.load() == State::kReady) return *text_;  // published before the state turned ready
  std::lock_guard lock(mutex_);
  if (state_.load() == State::kDraining && text_) return *text_;  // it refuses new work itself
  throw Error(
      ErrorCode::kUnavailable,
      "not ready: " +
          (state_.load() == State::kFailed ? detail_ : std::string(state_name(state_.load()))));
}

void Runtime::begin_drain() {
  std::lock_guard lock(mutex_);
  state_.store(State::kDraining);
  if (text_) text_->stop_accepting();
}

}  // namespace mmserve::runtime
