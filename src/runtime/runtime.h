// The serving runtime: loads the models in the background, owns the schedulers, and knows
// whether the process is ready. The HTTP layer asks it for the scheduler of a task.
//
// Ownership: owns the TextScheduler (and so the model and its context) and the SpeechScheduler
// (whisper model and states); either may be absent (a speech-only or a text-only server).
// Threading: all public methods are thread-safe; text() and speech() return references that
// stay valid until the Runtime dies.
//
// CPU threads: --threads is the process's budget (default: every core). With a text and a speech
// model both loaded, speech gets --speech-threads (default half the budget) and text the rest,
// at least one each, so the two engines busy at once never oversubscribe the machine.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/speech_model.h"
#include "engine/vision_model.h"
#include "media/audio_decode.h"
#include "media/image_decoder.h"
#include "scheduler/speech_scheduler.h"
#include "scheduler/text_scheduler.h"

namespace mmserve::runtime {

struct RuntimeOptions {
  std::string model_path;   // resolved GGUF path
  std::string mmproj_path;  // multimodal projector loaded beside the model; empty: text only
  // Image input policy, applied by the HTTP layer: size limits, and the hosts whose http(s)
  // image URLs may be fetched (none by default: a server must not be made to fetch for a client).
  media::ImageLimits image_limits;
  std::vector<std::string> image_hosts;
  int32_t ctx_size = 0;  // total KV cells; 0 = parallel x min(training context, 4096)
  int32_t parallel = 4;
  int32_t batch_size = 512;
  int32_t threads = 0;  // 0 = every core this process may use
  int32_t queue_size = 64;
  std::chrono::milliseconds request_timeout{600'000};
  // Speech: a whisper.cpp model served beside the text model, or alone (model_path empty).
  std::string whisper_model_path;  // empty: no speech
  std::string vad_model_path;      // Silero VAD (ggml); empty: windows cut at quiet points
  int32_t speech_parallel = 2;     // whisper states: transcription windows run at once
  int32_t speech_threads = 0;      // 0 = half of --threads beside a text model, else all
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

  // Starts loading in a background thread: model, context, then a one-token probe decode.
  void start_loading();
  // Loads in the calling thread (CLI tools, tests); throws Error on failure.
  void load_now();

  State state() const { return state_.load(); }
  // Why the runtime is not ready (the load error, "loading", ...); empty when ready.
  std::string detail() const;
  // The text scheduler once loaded; throws Error(kUnavailable) while loading or failed.
  scheduler::TextScheduler& text() const;
  // The speech scheduler once loaded; throws Error(kModelUnavailable) when the server has no
  // speech model, Error(kUnavailable) while loading or failed.
  scheduler::SpeechScheduler& speech() const;
  std::shared_ptr<const engine::SpeechModel> speech_model() const;  // null when none/not ready
  bool has_text() const { return !options_.model_path.empty(); }
  bool has_speech() const { return !options_.whisper_model_path.empty(); }
  // The projector once loaded; nullptr when the server runs without --mmproj (or not ready).
  // Only its thread-safe parts (tokenize, info) may be used off the scheduler thread.
  std::shared_ptr<const engine::VisionModel> vision() const;
  const RuntimeOptions& options() const { return options_; }
  std::chrono::system_clock::time_point loaded_at() const { return loaded_at_; }

  // Stop accepting new work (shutdown drain); in-flight requests continue.
  void begin_drain();
  // Ends every queued and running request (drain timeout).
  void cancel_all();

 private:
  void load();
  std::unique_ptr<scheduler::SpeechScheduler> load_speech(int32_t threads);

  RuntimeOptions options_;
  std::atomic<State> state_{State::kLoading};
  mutable std::mutex mutex_;
  std::string detail_;                                       // guarded by mutex_
  std::unique_ptr<scheduler::TextScheduler> text_;           // set once under mutex_, before kReady
  std::shared_ptr<const engine::VisionModel> vision_;        // set with text_
  std::unique_ptr<scheduler::SpeechScheduler> speech_;       // set with text_
  std::shared_ptr<const engine::SpeechModel> speech_model_;  // set with speech_
  std::chrono::system_clock::time_point loaded_at_{};        // set with text_
  std::thread loader_;
};

}  // namespace mmserve::runtime
