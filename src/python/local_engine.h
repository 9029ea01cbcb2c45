// The Python SDK's local mode in C++: a text model (with its projector, for images) and a
// whisper.cpp speech model served in-process, without HTTP.
//
// LocalEngine is the server's path minus the network: the same runtime (model registry, the
// models' schedulers: continuous batching for text and images, the window scheduler for
// speech, the same split of CPU threads between them), and the same typed call
// (pipeline/call.h) run by the same local executor (executors/local/), its parameters checked by
// the same rules (pipeline/generation_params.h). Nothing of the server's request rules is copied
// here (chat templates, caption prompts, default max_tokens, audio decoding and limits), so both
// SDK modes give the same output for the same request. It knows nothing of Python; module.cpp
// binds it.
//
// Ownership: LocalEngine owns its runtime, which owns the models and their schedulers. close()
// releases them; a Completion or Transcription in flight is cancelled and keeps only its own
// mailbox alive. Threading: every method of LocalEngine, Completion and Transcription is
// thread-safe. Their waits block; call them without holding locks others need (the binding
// releases the GIL).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_annotations.h"
#include "engine/speech_transcript.h"
#include "engine/text_model.h"
#include "pipeline/call.h"
#include "pipeline/generation_params.h"
#include "scheduler/generation.h"
#include "scheduler/speech_scheduler.h"

namespace mmserve::python {

// Which models to load. The text model is found as the server finds it (core/model_locator.h);
// unset companions (the projector, the speech model) come from the model directory when the text
// model does (as `mmserve pull` puts them there), and are absent otherwise; "" is absent.
struct EngineOptions {
  std::string model_path;  // empty: $MMSERVE_MODEL, then the model directory (as the CLI)
  std::optional<std::string> mmproj_path;   // the projector: images (describe, image parts)
  std::optional<std::string> whisper_path;  // whisper.cpp model: transcribe
  std::string vad_path;                     // Silero VAD for the speech model; "" = none
  int32_t speech_threads = 0;   // threads for speech beside a text model; 0 = half (runtime.h)
  int32_t speech_parallel = 2;  // speech windows run at once
  int32_t gpu_layers = 0;       // layers offloaded to a GPU: 0 = CPU only, -1 = all
  int32_t threads = 0;          // CPU threads; 0 = every core the process may use
  int32_t parallel = 1;         // sequences decoded together (concurrent callers share the batch)
  int32_t ctx_size = 0;         // KV cells for all sequences; 0 = parallel x min(train ctx, 4096)
  int32_t batch_size = 512;     // most tokens per decode step
  int32_t queue_size = 1024;    // callers that may wait for a free sequence; more get kBusy
};

// Sampling and length options of one request; unset fields take the engine's defaults, exactly
// as a missing JSON parameter does on the server (the same type the server reads them into).
using TextOptions = pipeline::GenerationParams;

struct EngineInfo {
  std::string model_id;  // the text model; empty when only a speech model is loaded
  std::string model_path;
  std::string architecture;
  std::string mmproj_path;   // empty: no projector
  std::string whisper_path;  // empty: no speech model
  std::string whisper_id;
  bool text = false, vision = false, speech = false;  // what this engine can run
  int32_t n_ctx = 0;                                  // KV cells shared by all sequences
  int32_t sequence_capacity = 0;  // most tokens (prompt + output) of one request
  int32_t parallel = 0;
  bool has_chat_template = false;
};

struct CompletionResult {
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double queue_ms = 0, prompt_ms = 0, generate_ms = 0;
};

// One submitted request: its text as it is produced, then its result.
class Completion {
 public:
  Completion(std::shared_ptr<scheduler::Generation> generation,
             std::shared_ptr<const std::atomic<bool>> engine_closed);
  ~Completion();  // cancels the request when it is still running

  // Waits up to `wait` for text; returns what was produced since the last call (maybe empty).
  // `finished` turns true once the request is over and nothing is left to read.
  std::string next(std::chrono::milliseconds wait, bool& finished);
  // The outcome once finished (call after next() reported finished). Throws Error when the
  // request failed: kModelUnavailable if the engine was closed under it, kTimeout, kCancelled,
  // kInternal.
  CompletionResult result() const;
  // Asks the engine to stop this request; it finishes with "cancelled" soon after.
  void cancel();

 private:
  std::shared_ptr<scheduler::Generation> generation_;
  std::shared_ptr<const std::atomic<bool>> engine_closed_;
};

// A transcription's parameters: speech-transcribe's (the server's parameters of the same names).
using SpeechOptions = pipeline::SpeechParams;

// One submitted transcription.
class Transcription {
 public:
  Transcription(std::shared_ptr<scheduler::SpeechJob> job,
                std::shared_ptr<const std::atomic<bool>> engine_closed);
  ~Transcription();  // cancels the job when it is still running

  // Waits up to `wait`; true once the outcome is in.
  bool wait(std::chrono::milliseconds wait);
  // The transcript once finished. Throws Error as Completion::result does.
  engine::Transcript result() const;
  void cancel();

 private:
  std::shared_ptr<scheduler::SpeechJob> job_;
  std::shared_ptr<const std::atomic<bool>> engine_closed_;
};

struct Served;  // the runtime and the pipeline of one loaded engine

class LocalEngine {
 public:
  // Locates and loads the model, creates the batch and scheduler, and runs a one-token probe
  // decode (as the server's readiness does). Throws Error: kNotFound/kModelLoad (field "model"),
  // kInvalidInput for bad options.
  explicit LocalEngine(const EngineOptions& options);
  ~LocalEngine();
  LocalEngine(const LocalEngine&) = delete;
  LocalEngine& operator=(const LocalEngine&) = delete;

  EngineInfo info() const;  // throws Error(kModelUnavailable) once closed

  // Text generation as POST /v1/inference task "text-gen" (pipeline::PromptStyle::kInstruct,
  // or kRaw when `raw`).
  std::unique_ptr<Completion> submit_text(const std::string& input, bool raw,
                                          const std::optional<std::string>& system,
                                          const TextOptions& options);
  // Chat as POST /v1/chat/completions (pipeline::PromptStyle::kChat); image parts (data URLs
  // or base64) need the projector.
  std::unique_ptr<Completion> submit_chat(const std::vector<pipeline::Message>& messages,
                                          const TextOptions& options);
  // An image description as task "image-caption": `image` the file's bytes, `prompt` what to
  // ask (unset: the server's default), as a user turn after `system` unless `raw`.
  std::unique_ptr<Completion> submit_caption(std::string image,
                                             const std::optional<std::string>& prompt, bool raw,
                                             const std::optional<std::string>& system,
                                             const TextOptions& options);
  // A transcription as task "speech-transcribe": `audio` a file's bytes (any container the
  // server decodes).
  std::unique_ptr<Transcription> submit_transcription(std::string audio,
                                                      const SpeechOptions& options);

  // Cancels what is running and frees the model and its context. Idempotent. After it, every
  // method throws Error(kModelUnavailable).
  void close();
  bool loaded() const { return !closed_->load(); }

  // LocalEngine instances in this process that still hold a model (tests, diagnostics).
  static int live_count();

 private:
  std::shared_ptr<Served> served() const;
  // Checks the options, runs the call through the pipeline and returns its Completion.
  std::unique_ptr<Completion> submit(pipeline::Call call, const TextOptions& options);

  mutable Mutex mutex_;
  std::shared_ptr<Served> served_ GUARDED_BY(mutex_);  // null once closed
  std::shared_ptr<std::atomic<bool>> closed_ = std::make_shared<std::atomic<bool>>(false);
  EngineInfo info_;  // immutable after construction
};

}  // namespace mmserve::python
