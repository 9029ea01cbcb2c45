// The serving runtime: loads the models in the background, owns the schedulers, and knows
// whether the process is ready. The HTTP layer asks it for the scheduler of a task.
//
// Ownership: owns the TextScheduler (and so the model and its context). Threading: all public
// methods are thread-safe; text() returns a pointer that stays valid until the Runtime dies.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "scheduler/text_scheduler.h"

namespace mmserve::runtime {

struct RuntimeOptions {
  std::string model_path;  // resolved GGUF path
  int32_t ctx_size = 0;    // total KV cells; 0 = parallel x min(training context, 4096)
  int32_t parallel = 4;
  int32_t batch_size = 512;
  int32_t threads = 0;  // 0 = every core this process may use
  int32_t queue_size = 64;
  std::chrono::milliseconds request_timeout{600'000};
};

enum class State { kLoading, kReady, kFailed, kDraining };
const char* state_name(State state);

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);
  ~Runtime();  // waits for a load in progress
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts loading in a background thread: model, context, then a one-token probe decode.
  void start_loading();
  // Loads in the calling thread (CLI tools, tests); throws Error on failure.
  void load_now();

  State state() const { return state_.load(); }
  // Why the runtime is not ready (the load error, "loading", ...); empty when ready.
  std::string detail() const;
  // The text scheduler once loaded; throws Error(kUnavailable) while loading or failed.
  scheduler::TextScheduler& text() const;
  const RuntimeOptions& options() const { return options_; }
  std::chrono::system_clock::time_point loaded_at() const { return loaded_at_; }

  // Stop accepting new work (shutdown drain); in-flight requests continue.
  void begin_drain();

 private:
  void load();

  RuntimeOptions options_;
  std::atomic<State> state_{State::kLoading};
  mutable std::mutex mutex_;
  std::string detail_;                                 // guarded by mutex_
  std::unique_ptr<scheduler::TextScheduler> text_;     // set once under mutex_, before kReady
  std::chrono::system_clock::time_point loaded_at_{};  // set with text_
  std::thread loader_;
};

}  // namespace mmserve::runtime
