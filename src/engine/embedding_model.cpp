#include "engine/embedding_model.h"

#include <llama.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "engine/backend.h"

namespace mmserve::engine {
namespace {

// Encoder-only architectures of llama.cpp that exist to embed (their files may omit pooling).
const std::set<std::string, std::less<>> kEmbeddingArchitectures = {
    "bert",        "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3",
    "modern-bert", "neo-bert",   "eurobert",       "t5encoder"};

// llama.cpp's LLAMA_MAX_SEQ (internal to it): the most sequences a context takes.
constexpr int32_t kMaxSequences = 256;

}  // namespace

int32_t EmbeddingOptions::max_input_for(int64_t n_ctx_train) const {
  const auto train = static_cast<int32_t>(std::clamp<int64_t>(n_ctx_train, 1, INT32_MAX));
  return max_input_tokens > 0 ? std::min(max_input_tokens, train)
                              : std::min(train, kDefaultMaxInput);
}

int32_t EmbeddingOptions::batch_tokens_for(int64_t n_ctx_train) const {
  return std::max(batch_tokens, max_input_for(n_ctx_train));
}

bool is_encoder_architecture(std::string_view architecture) {
  return kEmbeddingArchitectures.contains(architecture);
}

EmbeddingFileFacts embedding_file_facts(const std::string& path) {
  return embedding_facts(inspect_gguf(path));  // the one reader, and its messages
}

EmbeddingFileFacts embedding_facts(const GgufSummary& summary) {
  EmbeddingFileFacts facts;
  facts.architecture = summary.architecture;
  facts.pooling_key = summary.pooling_type >= 0;
  facts.pooling = static_cast<int32_t>(summary.pooling_type);
  facts.is_embedding_model =
      is_encoder_architecture(facts.architecture) || facts.pooling == LLAMA_POOLING_TYPE_MEAN ||
      facts.pooling == LLAMA_POOLING_TYPE_CLS || facts.pooling == LLAMA_POOLING_TYPE_LAST;
  return facts;
}

const char* pooling_name(int32_t pooling) {
  switch (pooling) {
    case LLAMA_POOLING_TYPE_NONE: return "none";
    case LLAMA_POOLING_TYPE_MEAN: return "mean";
    case LLAMA_POOLING_TYPE_CLS: return "cls";
    case LLAMA_POOLING_TYPE_LAST: return "last";
    case LLAMA_POOLING_TYPE_RANK: return "rank";
    default: return "unspecified";
  }
}

std::unique_ptr<EmbeddingModel> EmbeddingModel::load(const std::string& path,
                                                     const EmbeddingOptions& options) {
  auto model = TextModel::load(path, {.gpu_layers = options.gpu_layers});
  std::unique_ptr<EmbeddingModel> self(new EmbeddingModel());
  self->model_ = model;
  self->n_embd_ = llama_model_n_embd_out(model->raw());
  self->n_vocab_ = llama_vocab_n_tokens(model->vocab());
  self->max_input_ = options.max_input_for(model->n_ctx_train());
  self->batch_tokens_ = options.batch_tokens_for(model->n_ctx_train());
  self->max_sequences_ = std::clamp(options.max_sequences, 1, kMaxSequences);

  auto params = llama_context_default_params();
  params.n_ctx = static_cast<uint32_t>(self->batch_tokens_);
  params.n_batch = static_cast<uint32_t>(self->batch_tokens_);
  params.n_ubatch = params.n_batch;  // non-causal attention: the whole input in one ubatch
  params.n_seq_max = static_cast<uint32_t>(self->max_sequences_);
  params.kv_unified = true;  // a causal embedder's inputs share the cells as they need
  params.embeddings = true;
  const int threads = options.threads > 0 ? options.threads : default_thread_count();
  params.n_threads = threads;
  params.n_threads_batch = threads;
  clear_recent_engine_errors();
  llama_context* ctx = llama_init_from_model(model->raw(), params);
  if (ctx != nullptr) {
    const auto pooling = llama_pooling_type(ctx);
    if (pooling == LLAMA_POOLING_TYPE_NONE || pooling == LLAMA_POOLING_TYPE_RANK) {
      // One vector per input is what the API returns: pool by mean when the file says not to.
      llama_free(ctx);
      params.pooling_type = LLAMA_POOLING_TYPE_MEAN;
      ctx = llama_init_from_model(model->raw(), params);
    }
  }
  if (ctx == nullptr) {
    std::string why = recent_engine_errors();
    throw Error(
        ErrorCode::kModelLoad,
        "cannot make an embedding context for " + path + (why.empty() ? std::string() : ": " + why),
        "model");
  }
  self->ctx_ = ctx;
  self->pooling_ = llama_pooling_type(ctx);
  return self;
}

EmbeddingModel::~EmbeddingModel() {
  if (ctx_ != nullptr) llama_free(ctx_);
}

std::vector<Token> EmbeddingModel::tokenize(const std::string& text) const {
  return model_->tokenize(text, /*add_special=*/true, /*parse_special=*/false);
}

void EmbeddingModel::validate(const std::vector<Token>& tokens, const std::string& field) const {
  if (tokens.empty()) {
    throw Error(ErrorCode::kInvalidInput, "field '" + field + "' is empty: nothing to embed",
                field);
  }
  if (static_cast<int64_t>(tokens.size()) > max_input_) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + field + "' is " + std::to_string(tokens.size()) +
                    " tokens; this model embeds at most " + std::to_string(max_input_) +
                    " tokens per input (it is not truncated: shorten or split it)",
                field);
  }
  for (const Token t : tokens) {
    if (t < 0 || t >= n_vocab_) {
      throw Error(ErrorCode::kInvalidInput,
                  "field '" + field + "' has token id " + std::to_string(t) +
                      ", outside this model's vocabulary (0.." + std::to_string(n_vocab_ - 1) + ")",
                  field);
    }
  }
}

std::vector<std::vector<float>> EmbeddingModel::embed(
    const std::vector<std::vector<Token>>& inputs) {
  if (inputs.empty()) return {};
  size_t total = 0;
  for (const auto& in : inputs) {
    validate(in, "input");
    total += in.size();
  }
  if (total > static_cast<size_t>(batch_tokens_) ||
      inputs.size() > static_cast<size_t>(max_sequences_)) {
    throw Error(ErrorCode::kInvalidInput,
                std::to_string(inputs.size()) + " inputs of " + std::to_string(total) +
                    " tokens do not fit one decode (" + std::to_string(max_sequences_) +
                    " inputs, " + std::to_string(batch_tokens_) + " tokens)",
                "input");
  }
  // A causal embedder keeps a KV cache: each decode starts from an empty one.
  if (llama_memory_t mem = llama_get_memory(ctx_)) llama_memory_clear(mem, true);
  llama_batch batch = llama_batch_init(static_cast<int32_t>(total), 0, 1);
  for (size_t s = 0; s < inputs.size(); ++s) {
    const auto& in = inputs[s];
    for (size_t i = 0; i < in.size(); ++i) {
      const int32_t n = batch.n_tokens++;
      batch.token[n] = in[i];
      batch.pos[n] = static_cast<llama_pos>(i);
      batch.n_seq_id[n] = 1;
      batch.seq_id[n][0] = static_cast<llama_seq_id>(s);
      batch.logits[n] = 1;  // with pooling, every token is an output of its sequence
    }
  }
  clear_recent_engine_errors();
  const int32_t rc = llama_decode(ctx_, batch);
  llama_batch_free(batch);
  if (rc != 0) {
    const std::string why = recent_engine_errors();
    throw Error(ErrorCode::kInternal, "the embedding decode failed (llama_decode returned " +
                                          std::to_string(rc) + ")" +
                                          (why.empty() ? std::string() : ": " + why));
  }
  std::vector<std::vector<float>> out;
  out.reserve(inputs.size());
  for (size_t s = 0; s < inputs.size(); ++s) {
    const float* v = llama_get_embeddings_seq(ctx_, static_cast<llama_seq_id>(s));
    if (v == nullptr) {
      throw Error(ErrorCode::kInternal, "llama.cpp returned no pooled embedding for an input");
    }
    std::vector<float> vec(v, v + n_embd_);
    l2_normalize(vec);
    out.push_back(std::move(vec));
  }
  return out;
}

void l2_normalize(std::vector<float>& v) {
  double sum = 0;
  for (const float x : v) sum += static_cast<double>(x) * x;
  if (sum <= 0) return;
  const double inv = 1.0 / std::sqrt(sum);
  for (float& x : v) x = static_cast<float>(x * inv);
}

std::vector<float> shorten_embedding(const std::vector<float>& v, int32_t dimensions,
                                     const std::string& field) {
  if (dimensions < 1 || static_cast<size_t>(dimensions) > v.size()) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + field + "' must be 1.." + std::to_string(v.size()) +
                    " (this model's embedding length)",
                field);
  }
  std::vector<float> out(v.begin(), v.begin() + dimensions);
  l2_normalize(out);
  return out;
}

}  // namespace mmserve::engine
