// The serving runtime: the process's state (loading, ready, draining), the model registry
// (model_registry.h) and the request policy the HTTP layer applies (image and audio limits,
// the per-request deadline). The HTTP layer asks it for a lease on the model of a request.
//
// Ownership: owns the ModelRegistry, which owns the loaded models and their schedulers.
// Threading: all public methods are thread-safe.
//
// CPU threads: --threads is the process's budget (default: every core). With text and speech
// models both configured, speech models get --speech-threads (default half the budget) and text
// models the rest, at least one each, so the two kinds busy at once never oversubscribe the
// machine. Several text models busy at once share the text budget's cores.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"
#include "media/audio_decode.h"
#include "media/image_decoder.h"
#include "runtime/model_registry.h"

namespace mmserve::runtime {

struct RuntimeOptions {
  std::vector<ModelSpec> models;  // from the flags (-m, --whisper-model) or a models file
  RegistryOptions registry;
  // Image input policy, applied by the HTTP layer: size limits, and the hosts whose http(s)
  // image URLs may be fetched (none by default: a server must not be made to fetch for a client).
  media::ImageLimits image_limits;
  std::vector<std::string> image_hosts;
  std::chrono::milliseconds request_timeout{600'000};
  media::AudioLimits audio_limits{.max_bytes = 25u << 20, .max_seconds = 3600};
};

enum class State { kLoading, kReady, kFailed, kDraining };
const char* state_name(State state);

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);
  ~Runtime();  // waits for a load in progress
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts loading the preloaded models in a background thread (each: files, scheduler, probe).
  void start_loading();
  // Loads in the calling thread (tests); throws Error on failure.
  void load_now();

  State state() const { return state_.load(); }
  // Why the runtime is not ready (the load error, "loading", ...); empty when ready.
  std::string detail() const;
  // A lease on the model for `task` named `model` (empty: the task's default), loading it if
  // needed. Throws Error(kUnavailable) while loading, failed or draining, else what
  // ModelRegistry::acquire throws.
  ModelLease acquire(Task task, std::string_view model);
  ModelRegistry& models() { return registry_; }
  const ModelRegistry& models() const { return registry_; }
  bool has_text() const { return registry_.serves(Task::kTextGen); }
  bool has_speech() const { return registry_.serves(Task::kSpeechTranscribe); }
  const RuntimeOptions& options() const { return options_; }

  // Stop accepting new work (shutdown drain); in-flight requests continue.
  void begin_drain();
  // Ends every queued and running request (drain timeout).
  void cancel_all();

 private:
  void load();
  void check_serving() const;  // Error(kUnavailable) unless ready

  RuntimeOptions options_;
  ModelRegistry registry_;
  std::atomic<State> state_{State::kLoading};
  mutable Mutex mutex_;
  std::string detail_ GUARDED_BY(mutex_);
  std::thread loader_;
};

}  // namespace mmserve::runtime
