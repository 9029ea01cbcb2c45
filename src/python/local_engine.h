// The Python SDK's local mode in C++: one text model served in-process, without HTTP.
//
// LocalEngine is the server's text path minus the network: the same TextModel, the same
// continuous-batching TextScheduler (its own thread, bounded queue, one shared TextBatch), and the
// same request rules as POST /v1/inference and /v1/chat/completions (chat template handling,
// default max_tokens = what is left of one sequence's context, range checks), so both SDK modes
// give the same output for the same request. It knows nothing of Python; module.cpp binds it.
//
// Ownership: LocalEngine owns the scheduler, which owns the TextBatch and the TextModel. close()
// releases them; a Completion in flight is cancelled and keeps only its own mailbox alive.
// Threading: every method of LocalEngine and Completion is thread-safe. Completion::next and
// wait block; call them without holding locks others need (the binding releases the GIL).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/text_batch.h"
#include "engine/text_model.h"
#include "scheduler/generation.h"
#include "scheduler/text_scheduler.h"

namespace mmserve::python {

struct EngineOptions {
  std::string model_path;     // empty: $MMSERVE_MODEL, then the model directory (as the CLI)
  int32_t gpu_layers = 0;     // layers offloaded to a GPU: 0 = CPU only, -1 = all
  int32_t threads = 0;        // CPU threads; 0 = every core the process may use
  int32_t parallel = 1;       // sequences decoded together (concurrent callers share the batch)
  int32_t ctx_size = 0;       // KV cells for all sequences; 0 = parallel x min(train ctx, 4096)
  int32_t batch_size = 512;   // most tokens per decode step
  int32_t queue_size = 1024;  // callers that may wait for a free sequence; more get kBusy
};

// Sampling and length options of one request; unset fields take the engine's defaults, exactly
// as a missing JSON parameter does on the server.
struct TextOptions {
  std::optional<int64_t> max_tokens;  // default: what is left of the sequence's context
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repeat_penalty;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;
  bool ignore_eos = false;
};

struct EngineInfo {
  std::string model_id;
  std::string model_path;
  std::string architecture;
  int32_t n_ctx = 0;              // KV cells shared by all sequences
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

  // Text generation as POST /v1/inference task "text-gen": a model with a chat template gets
  // `input` as a user message (after `system` when given) unless `raw`; one without, as is.
  std::unique_ptr<Completion> submit_text(const std::string& input, bool raw,
                                          const std::optional<std::string>& system,
                                          const TextOptions& options);
  // Chat as POST /v1/chat/completions: the model's chat template, ChatML when it has none.
  std::unique_ptr<Completion> submit_chat(const std::vector<engine::ChatMessage>& messages,
                                          const TextOptions& options);

  // Cancels what is running and frees the model and its context. Idempotent. After it, every
  // method throws Error(kModelUnavailable).
  void close();
  bool loaded() const { return !closed_->load(); }

  // LocalEngine instances in this process that still hold a model (tests, diagnostics).
  static int live_count();

 private:
  std::shared_ptr<scheduler::TextScheduler> scheduler() const;
  std::unique_ptr<Completion> submit(std::shared_ptr<scheduler::TextScheduler> text,
                                     std::vector<engine::Token> prompt, const TextOptions& options);

  mutable std::mutex mutex_;
  std::shared_ptr<scheduler::TextScheduler> text_;  // guarded by mutex_; null once closed
  std::shared_ptr<std::atomic<bool>> closed_ = std::make_shared<std::atomic<bool>>(false);
  EngineInfo info_;  // immutable after construction
};

}  // namespace mmserve::python
