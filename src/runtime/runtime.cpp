#include "runtime/runtime.h"

#include "core/error.h"

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

Runtime::Runtime(RuntimeOptions options)
    : options_(std::move(options)), registry_(options_.models, options_.registry) {}

Runtime::~Runtime() {
  if (loader_.joinable()) {
    loader_.join();
  }
}

void Runtime::start_loading() {
  loader_ = std::thread([this] {
    try {
      load();
    } catch (const std::exception& e) {
      MutexLock lock(mutex_);
      detail_ = e.what();
      // A drain that began during the load is what stopped it: a clean stop, not a failure.
      State expected = State::kLoading;
      state_.compare_exchange_strong(expected, State::kFailed);
    }
  });
}

void Runtime::load_now() {
  load();
}

void Runtime::load() {
  registry_.preload();
  State expected = State::kLoading;
  state_.compare_exchange_strong(expected, State::kReady);  // a drain during the load wins
}

std::string Runtime::detail() const {
  switch (state_.load()) {
    case State::kReady: return {};
    case State::kLoading: {
      std::string names;
      for (const auto& spec : registry_.specs()) {
        if (spec.preload) {
          names += (names.empty() ? "" : ", ") + spec.name;
        }
      }
      return "loading the model" + std::string(names.find(',') != std::string::npos ? "s " : " ") +
             names;
    }
    case State::kDraining: return "the server is shutting down";
    case State::kFailed: {
      MutexLock lock(mutex_);
      return detail_;
    }
  }
  return {};
}

void Runtime::check_serving() const {
  const State state = state_.load();
  if (state == State::kReady) {
    return;
  }
  if (state == State::kDraining) {
    throw Error(ErrorCode::kUnavailable, "the server is shutting down");
  }
  MutexLock lock(mutex_);
  throw Error(ErrorCode::kUnavailable,
              "not ready: " + (state == State::kFailed ? detail_ : std::string(state_name(state))));
}

ModelLease Runtime::acquire(Task task, std::string_view model) {
  // A task no model serves is a 400 whatever the state (the registry says so and loads nothing).
  if (model.empty() && !registry_.serves(task)) {
    return registry_.acquire(task, model);
  }
  check_serving();
  return registry_.acquire(task, model);
}

void Runtime::begin_drain() {
  state_.store(State::kDraining);
  registry_.stop_accepting();
}

void Runtime::cancel_all() {
  registry_.cancel_all();
}

}  // namespace mmserve::runtime
