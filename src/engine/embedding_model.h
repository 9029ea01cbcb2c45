// An embedding model: a GGUF model (BERT family, nomic-bert, bge-m3, Qwen3-Embedding, ...)
// with its own llama_context in embeddings mode, pooling one vector per input.
//
// Several inputs go into one llama_decode, each its own sequence (llama.cpp pools per seq_id
// and non-causal models attend only within a sequence), and the whole batch is one ubatch
// (n_ubatch = n_batch) because non-causal attention needs every token of an input at once.
// Vectors come back L2-normalised (unit length, as OpenAI's). Pooling is the file's
// (`<arch>.pooling_type`); a model whose file names none (or "none"/"rank") gets mean pooling.
// An input longer than max_input_tokens() is refused, never truncated silently.
//
// Ownership: owns its TextModel (weights, vocabulary) and the context, freed on destruction.
// Threading: tokenize, validate and the accessors are thread-safe (immutable state); embed()
// uses the one context and must be called by one thread at a time (the EmbeddingScheduler's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/text_model.h"

struct llama_context;

namespace mmserve::engine {

// What a GGUF file says about embedding, read from its metadata only (no weights loaded).
struct EmbeddingFileFacts {
  std::string architecture;
  bool pooling_key = false;  // `<arch>.pooling_type` is present
  int32_t pooling = -1;      // its value (llama_pooling_type); -1 when absent
  // An encoder-only embedding architecture (bert, nomic-bert, jina-bert-*, modern-bert, ...),
  // or any file whose pooling_type says mean, cls or last.
  bool is_embedding_model = false;
};
// Throws inspect_gguf's errors (kNotFound, kModelLoad) for a missing or unreadable file.
EmbeddingFileFacts embedding_file_facts(const std::string& path);
// The same from a header already read (also a remote one).
EmbeddingFileFacts embedding_facts(const GgufSummary& summary);

struct EmbeddingOptions {
  int32_t max_input_tokens = 0;  // 0: min(training context, kDefaultMaxInput)
  int32_t batch_tokens = 0;      // tokens per decode; 0 (or less than one input): one input's
  int32_t max_sequences = 64;    // inputs per decode
  int32_t threads = 0;           // 0 = every core
  int32_t gpu_layers = -1;
  static constexpr int32_t kDefaultMaxInput = 8192;

  // The longest input, and the tokens of one decode (its context), for a model trained on
  // `n_ctx_train` tokens: what load() makes, and what the memory estimate counts.
  int32_t max_input_for(int64_t n_ctx_train) const;
  int32_t batch_tokens_for(int64_t n_ctx_train) const;
};

// An encoder-only architecture made to embed (bert, nomic-bert, ...): llama.cpp keeps no KV
// cache for it.
bool is_encoder_architecture(std::string_view architecture);

const char* pooling_name(int32_t pooling);  // "mean", "cls", "last", ...

// What the embedding scheduler drives: a model that embeds several inputs per call. The
// interface lets the scheduler's tests run without weights.
class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual int32_t batch_tokens() const = 0;   // tokens per embed() call, at most
  virtual int32_t max_sequences() const = 0;  // inputs per embed() call, at most
  // Throws Error(kInvalidInput, field) for an input embed() would refuse. Thread-safe.
  virtual void validate(const std::vector<Token>& tokens, const std::string& field) const = 0;
  // One unit vector per input, in order. Called by one thread at a time.
  virtual std::vector<std::vector<float>> embed(const std::vector<std::vector<Token>>& inputs) = 0;
};

class EmbeddingModel final : public Embedder {
 public:
  // Loads the weights and makes the context. Throws Error(kNotFound, kModelLoad).
  static std::unique_ptr<EmbeddingModel> load(const std::string& path,
                                              const EmbeddingOptions& options);
  ~EmbeddingModel() override;
  EmbeddingModel(const EmbeddingModel&) = delete;
  EmbeddingModel& operator=(const EmbeddingModel&) = delete;

  const TextModel& model() const { return *model_; }
  const std::shared_ptr<TextModel>& shared_model() const { return model_; }
  int32_t dimensions() const { return n_embd_; }  // the length of every vector
  int32_t max_input_tokens() const { return max_input_; }
  int32_t batch_tokens() const override { return batch_tokens_; }
  int32_t max_sequences() const override { return max_sequences_; }
  int32_t pooling() const { return pooling_; }  // llama_pooling_type in use
  int32_t n_vocab() const { return n_vocab_; }

  // The tokens of a text with the model's special tokens ([CLS] ... [SEP] for BERT).
  std::vector<Token> tokenize(const std::string& text) const;
  // Refuses an empty input, one longer than max_input_tokens() and token ids outside the
  // vocabulary: Error(kInvalidInput) naming `field`.
  void validate(const std::vector<Token>& tokens, const std::string& field) const override;

  // One decode of several validated inputs (their tokens at most batch_tokens() together, at
  // most max_sequences() of them); one unit vector per input, in order. Throws
  // Error(kInvalidInput) when they do not fit, Error(kInternal) when llama.cpp fails.
  std::vector<std::vector<float>> embed(const std::vector<std::vector<Token>>& inputs) override;

 private:
  EmbeddingModel() = default;
  std::shared_ptr<TextModel> model_;
  llama_context* ctx_ = nullptr;
  int32_t n_embd_ = 0;
  int32_t n_vocab_ = 0;
  int32_t max_input_ = 0;
  int32_t batch_tokens_ = 0;
  int32_t max_sequences_ = 0;
  int32_t pooling_ = 1;
};

// Scales a vector to unit length (a zero vector stays zero).
void l2_normalize(std::vector<float>& v);
// OpenAI's `dimensions` (Matryoshka truncation): the first `dimensions` components,
// renormalised. `dimensions` must be 1..v.size(), else Error(kInvalidInput, field).
std::vector<float> shorten_embedding(const std::vector<float>& v, int32_t dimensions,
                                     const std::string& field);

}  // namespace mmserve::engine
