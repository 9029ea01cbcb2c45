// Continuous batching over one llama_context: up to n_parallel sequences are decoded together,
// one llama_decode per step. A sequence joins at the next step and leaves the moment it
// finishes. Long prompts are fed in chunks so that running sequences keep producing a token at
// every step (decode tokens are placed first, prompt chunks fill the rest of --batch-size).
//
// KV cache: one unified pool of n_ctx cells shared by all sequences. A running sequence reserves
// prompt + max_tokens cells when it starts, so a decode never runs out of room mid-generation;
// an idle slot keeps its last tokens for prefix reuse until the room is needed by another.
// Prefix reuse crosses sequences: a prompt starting like one another sequence holds (running or
// idle) shares that sequence's cells for it, and sequences that start together with the same
// system prompt compute it once (one leads, the others wait, then share). Shared cells are
// still counted once per sequence in the reservations: never an over-commit.
//
// Images: a prompt may hold images (GenerationRequest::media, with a VisionModel). Each image is
// worked in two scheduled units, its encode and then the decode of its embeddings into the
// sequence, and a step runs at most one such unit after the text decode. So running streams
// still get one token per step while images are processed; their stall is bounded by one unit.
//
// LoRA adapters (lora_adapter.h): libllama sets adapters per context, so requests with
// different adapter sets (GenerationRequest::lora) never share a decode. When the running
// sequences hold more than one set, each step decodes the sequences of one set, the sets taking
// turns (the one served longest ago goes next, a new set at once; each keeps the decode for a
// turn of a few steps that amortizes the switch, BatchOptions::max_adapter_turn), and the
// context's set is changed only when it differs from the last step's
// (StepStats::adapter_switches). When every
// running sequence has the same set (all on the base, the usual case) a step is what it is
// without adapters. An idle slot's cached prefix is reused only by a request with the same
// set, since its KV was computed with it. Images work with adapters: their embeddings are
// decoded with the sequence's set.
//
// Threading: not thread-safe. One owner thread (the scheduler, or the CLI) calls every method;
// callbacks run on that thread, inside step() or cancel().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "engine/lora_adapter.h"
#include "engine/sampling.h"
#include "engine/text_model.h"
#include "engine/text_stream.h"
#include "engine/vision_prompt.h"

struct llama_context;
struct llama_batch;

namespace mmserve::engine {

class VisionModel;

struct BatchOptions {
  int32_t n_ctx = 0;       // KV cells shared by all sequences; 0 = the model's training context
  int32_t n_parallel = 1;  // sequences decoded together
  int32_t n_batch = 512;   // most tokens in one llama_decode call
  int32_t threads = 0;     // 0 = default_thread_count()
  // LoRA: the most steps one adapter set keeps the decode while others wait. Switching sets
  // rebuilds the context's graph, so a set keeps it for as many steps as make that cost at most
  // about one plain step per step (measured), within [1, this]. 1: strict alternation.
  int32_t max_adapter_turn = 8;
};

struct GenerationRequest {
  std::vector<Token> prompt;       // kMediaToken runs where `media` images go
  std::vector<PromptMedia> media;  // ordered by begin; needs a TextBatch with a VisionModel
  SamplingParams sampling;
  int32_t max_tokens = 128;
  std::vector<std::string> stop;
  bool ignore_eos = false;  // benchmarks: always produce max_tokens
  // false (llama-server's "cache_prompt": false): the prompt is decoded whole, not resumed from
  // the prefix an idle slot still holds; benchmarks of prompt processing need it.
  bool reuse_prefix = true;
  int32_t top_logprobs =
      0;  // > 0: record each generated token's logprob and this many alternatives
  // Structured output and tool calls: the grammar the answer must follow (chat_format.h), and
  // the special tokens written out in the text (its parser reads them).
  GrammarConstraint grammar;
  std::vector<Token> preserved_tokens;
  // The adapters this request runs with (empty: the base model); they must have been loaded
  // for this batch's model. The request holds them alive until it finishes.
  LoraSet lora;
  // The adapters as the client named them; the executor resolves them into `lora` (the engine
  // reads only `lora`).
  std::vector<LoraRef> lora_refs;
};

// One generated token's log-probability under the model's distribution (before sampling
// filters), with the most likely alternatives at that position, best first.
struct TokenLogprob {
  std::string piece;  // the token's bytes (may be part of a UTF-8 character)
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);

struct SequenceResult {
  FinishReason reason = FinishReason::kStop;
  std::string text;  // everything emitted through on_text
  int32_t prompt_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // of those, reused from a cache (prefix reuse), not decoded
  int32_t completion_tokens = 0;
  double prompt_ms = 0;                // start to first token
  double generate_ms = 0;              // first token to finish
  std::optional<Error> error;          // set when reason == kError, with its code
  std::vector<TokenLogprob> logprobs;  // one per generated token when top_logprobs > 0
};

struct SequenceCallbacks {
  std::function<void(std::string_view text)> on_text;    // may be empty
  std::function<void(const SequenceResult&)> on_finish;  // called exactly once
};

struct StepStats {
  int32_t sequences = 0;  // sequences that had a token in this decode
  int32_t tokens = 0;     // tokens decoded
  double decode_ms = 0;
  int32_t images_encoded = 0;  // image units run after the text decode (0 or 1 each)
  double image_encode_ms = 0;
  int32_t image_tokens = 0;  // image embeddings decoded into a sequence
  double image_decode_ms = 0;
  // LoRA: 1 when this step changed the context's adapter set (its graph is rebuilt), and the
  // set every sequence decoded in this step had (empty: the base).
  int32_t adapter_switches = 0;
  LoraSet::Key lora;
  int32_t threads = 0;  // CPU threads the decode ran with
};

class TextBatch {
 public:
  using SequenceId = int64_t;

  // `vision`, when given, must have been loaded for `model`; it lets requests carry images.
  TextBatch(std::shared_ptr<const TextModel> model, const BatchOptions& options,
            std::shared_ptr<VisionModel> vision = nullptr);
  ~TextBatch();
  TextBatch(const TextBatch&) = delete;
  TextBatch& operator=(const TextBatch&) = delete;

  int32_t n_ctx() const { return n_ctx_; }
  int32_t n_parallel() const { return static_cast<int32_t>(slots_.size()); }
  const TextModel& model() const { return *model_; }

  // Throws Error(kInvalidInput) when the request can never run here (empty prompt, prompt plus
  // max_tokens over the context, bad sampling values).
  void validate(const GenerationRequest& request) const;
  // True when a slot is free and enough KV cells can be freed for the request now, counting
  // `also_reserved` cells promised to requests admitted but not started yet (admissions in one
  // scheduler step add up, so they never over-commit the pool together).
  bool can_start(const GenerationRequest& request, int64_t also_reserved = 0) const;
  // The cells a request reserves while it runs: prompt + max_tokens.
  static int64_t reservation(const GenerationRequest& request) {
    return static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  }
  // Starts a validated request that can_start; returns its id.
  SequenceId start(GenerationRequest request, SequenceCallbacks callbacks);
  // Ends a running sequence now with kCancelled; unknown ids are ignored.
  void cancel(SequenceId id);

  bool has_work() const;
  int32_t running() const;
  // Fraction of KV cells reserved by running sequences or held by idle caches.
  double kv_usage() const;

  // One decode over all running sequences. Returns what it did (tokens == 0 when idle).
  StepStats step();

  // CPU threads for the steps from the next one on (a CpuShare's grant; >= 1).
  void set_threads(int32_t threads);

 private:
  struct Slot;
  void finish(Slot& slot, FinishReason reason, std::optional<Error> error = std::nullopt);
  int64_t cells_in_use(const Slot* except) const;
  // Prefix reuse across sequences, for a slot about to prefill (at the start of a step, when
  // every cache is decoded): takes the KV cells of the longest prefix of its prompt another
  // sequence (running or idle, same adapters) holds, and returns true when it should wait this
  // step because another sequence is decoding the tokens it needs next. So a system prompt
  // shared by clients that arrive together is computed once.
  bool borrow_prefix(Slot& slot);
  void sample_and_emit(Slot& slot, int32_t batch_index);
  Token sample_constrained(Slot& slot, int32_t batch_index);
  // Each token's bytes with special tokens written out, and whether it renders empty without
  // (a control token); built on the first constrained request.
  void build_piece_tables();
  std::vector<std::string> special_pieces_;
  std::vector<bool> renders_empty_;
  // Runs one image unit (an encode, or the decode of encoded embeddings) of some sequence
  // waiting at an image, round-robin; records what it did in `stats`.
  void media_step(StepStats& stats, const LoraSet* group);
  // The adapter set whose sequences this step decodes: the one set when all sequences with
  // work share it (then *mixed is false), else the one served longest ago. Null when idle.
  const LoraSet* choose_group(bool* mixed) const;
  void note_served(const LoraSet& set, bool switched);
  // Sets `set` on the context when it is not already there.
  void apply_lora(const LoraSet& set, StepStats& stats);
  // llama_decode, under adapter_lock when the context will rebuild its graph (after a switch).
  int32_t decode(const llama_batch& batch);

  std::shared_ptr<const TextModel> model_;
  std::shared_ptr<VisionModel> vision_;
  llama_context* ctx_ = nullptr;
  int32_t n_ctx_ = 0;
  int32_t n_batch_ = 0;
  // The llama_batch every step fills, allocated once: llama_batch_init makes one allocation per
  // row (n_batch_ of them), which a step per token would repeat.
  struct StepBatch;
  std::unique_ptr<StepBatch> step_batch_;
  int32_t threads_ = 1;
  bool share_cells_ = false;  // see the constructor
  std::vector<std::unique_ptr<Slot>> slots_;
  SequenceId next_id_ = 1;
  size_t prefill_cursor_ = 0;  // round-robin start among prefilling slots
  size_t media_cursor_ = 0;    // round-robin start among slots waiting at an image
  uint64_t use_clock_ = 0;     // for least-recently-used eviction of idle caches
  LoraSet applied_;            // the adapters set on ctx_ (held alive while set)
  // When each set was last served (group_clock_), while several sets run: for choose_group.
  std::vector<std::pair<LoraSet::Key, uint64_t>> served_at_;
  uint64_t group_clock_ = 0;
  int32_t turn_left_ = 0;  // steps the set on the context keeps the decode
  int32_t max_turn_ = 8;
  double switch_ms_ = 0, plain_ms_ = 0;  // decode times of steps with and without a switch
  bool reserve_pending_ = false;         // adapters changed since the last decode
  Mutex* adapter_lock_ = nullptr;        // adapter_lock(*model_)
};

}  // namespace mmserve::engine
