#include "synth/embed_synth.h"

#include <ggml.h>
#include <gguf.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <vector>

#include "core/error.h"
#include "synth/gguf_stream_writer.h"

namespace mmserve::synth {
namespace {

void require(bool ok, const std::string& message, const char* field) {
  if (!ok) {
    throw Error(ErrorCode::kInvalidInput, message, field);
  }
}

// llama.cpp's token types.
constexpr int32_t kNormal = 1, kControl = 3, kUnused = 5;
// The special tokens' ids in the generated vocabulary (given to llama.cpp by key, so they need
// not be BERT's 0/100/101/102/103).
constexpr uint32_t kPad = 0, kUnk = 1, kCls = 2, kSep = 3, kMask = 4;

struct WordPieceVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
};

// WordPiece as llama.cpp stores it: a word-start piece carries the "▁" prefix (BERT's plain
// "x"), a continuation piece is bare (BERT's "##x"). llama.cpp lower-cases the text first.
WordPieceVocab make_vocab(int32_t n_vocab) {
  WordPieceVocab v;
  std::set<std::string> seen;
  const auto add = [&](const std::string& token, int32_t type) {
    if (seen.insert(token).second) {
      v.tokens.push_back(token);
      v.types.push_back(type);
    }
  };
  for (const char* special : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    add(special, kControl);
  }
  const std::string start = "\xe2\x96\x81";
  const std::string chars =
      "abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()[]{}/\\@#$%&*+=<>_~`^|";
  for (const char c : chars) {
    add(start + c, kNormal);
    add(std::string(1, c), kNormal);
  }
  for (const char* word :
       {"the",    "of",        "and",    "to",    "in",    "is",     "it",    "that",
        "for",    "on",        "with",   "as",    "was",   "be",     "at",    "by",
        "this",   "an",        "are",    "or",    "from",  "hello",  "world", "cat",
        "dog",    "sat",       "mat",    "quick", "brown", "fox",    "jumps", "over",
        "lazy",   "embedding", "vector", "model", "text",  "search", "query", "document",
        "server", "ing",       "ed",     "er",    "ly",    "s"}) {
    add(start + word, kNormal);
    add(word, kNormal);
  }
  for (auto i = static_cast<int32_t>(v.tokens.size()); i < n_vocab; ++i) {
    add("[unused" + std::to_string(i) + "]", kUnused);
  }
  return v;  // more than n_vocab tokens when n_vocab is below the generated base
}

void check(const EmbedShape& s, size_t vocab_tokens) {
  require(s.n_embd > 0 && s.n_layer > 0 && s.n_ff > 0 && s.n_ctx > 0, "all sizes must be positive",
          "shape");
  require(s.n_head > 0 && s.n_embd % s.n_head == 0, "n_embd must be a multiple of n_head", "embd");
  require(s.n_vocab > 0 && static_cast<size_t>(s.n_vocab) == vocab_tokens,
          "the vocabulary needs at least " + std::to_string(vocab_tokens) + " tokens", "vocab");
  require(s.n_ctx >= 8 && s.n_ctx <= 1 << 16, "the context must be 8..65536 tokens", "context");
}

}  // namespace

EmbedShape embed_preset(const std::string& name) {
  if (name == "tiny") {
    return {};
  }
  if (name == "minilm-l6") {
    return {
        .n_vocab = 30522, .n_embd = 384, .n_layer = 6, .n_head = 12, .n_ff = 1536, .n_ctx = 512};
  }
  if (name == "bge-base") {
    return {
        .n_vocab = 30522, .n_embd = 768, .n_layer = 12, .n_head = 12, .n_ff = 3072, .n_ctx = 512};
  }
  throw Error(ErrorCode::kInvalidInput,
              "unknown preset '" + name + "'; presets: tiny, minilm-l6, bge-base", "preset");
}

EmbedSynthReport write_synthetic_embedding_model(const std::string& path,
                                                 const EmbedSynthOptions& options) {
  const EmbedShape& s = options.shape;
  const WordPieceVocab vocab = make_vocab(s.n_vocab);
  check(s, vocab.tokens.size());
  require(options.pooling == "mean" || options.pooling == "cls",
          "unknown pooling '" + options.pooling + "'; poolings: mean, cls", "pooling");
  require(options.type == "f16" || options.type == "f32",
          "unknown type '" + options.type + "'; types: f16, f32", "type");
  const int weight_type = options.type == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;

  GgufStreamWriter w(static_cast<size_t>(6 + 16 * s.n_layer));
  gguf_context* kv = w.kv();
  const auto u32 = [](int32_t v) { return static_cast<uint32_t>(v); };
  gguf_set_val_str(kv, "general.architecture", "bert");
  gguf_set_val_str(kv, "general.name", "mmserve synthetic BERT embedding model (random weights)");
  gguf_set_val_u32(kv, "general.file_type", weight_type == GGML_TYPE_F16 ? 1 : 0);
  gguf_set_val_u32(kv, "bert.context_length", u32(s.n_ctx));
  gguf_set_val_u32(kv, "bert.embedding_length", u32(s.n_embd));
  gguf_set_val_u32(kv, "bert.block_count", u32(s.n_layer));
  gguf_set_val_u32(kv, "bert.feed_forward_length", u32(s.n_ff));
  gguf_set_val_u32(kv, "bert.attention.head_count", u32(s.n_head));
  gguf_set_val_f32(kv, "bert.attention.layer_norm_epsilon", 1e-12f);
  gguf_set_val_bool(kv, "bert.attention.causal", false);
  // llama.cpp's enum llama_pooling_type: 1 mean, 2 cls.
  gguf_set_val_u32(kv, "bert.pooling_type", options.pooling == "cls" ? 2 : 1);
  gguf_set_val_str(kv, "tokenizer.ggml.model", "bert");
  gguf_set_val_u32(kv, "tokenizer.ggml.token_type_count", 2);
  std::vector<const char*> pieces;
  pieces.reserve(vocab.tokens.size());
  for (const auto& t : vocab.tokens) {
    pieces.push_back(t.c_str());
  }
  gguf_set_arr_str(kv, "tokenizer.ggml.tokens", pieces.data(), pieces.size());
  gguf_set_arr_data(kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, vocab.types.data(),
                    vocab.types.size());
  gguf_set_val_u32(kv, "tokenizer.ggml.padding_token_id", kPad);
  gguf_set_val_u32(kv, "tokenizer.ggml.unknown_token_id", kUnk);
  gguf_set_val_u32(kv, "tokenizer.ggml.bos_token_id", kCls);
  gguf_set_val_u32(kv, "tokenizer.ggml.seperator_token_id", kSep);  // llama.cpp's spelling
  gguf_set_val_u32(kv, "tokenizer.ggml.mask_token_id", kMask);
  gguf_set_val_bool(kv, "tokenizer.ggml.add_bos_token", true);
  gguf_set_val_bool(kv, "tokenizer.ggml.add_sep_token", true);

  const int64_t e = s.n_embd;
  const int64_t ff = s.n_ff;
  const uint64_t seed = options.seed;
  const auto scale = [](int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); };
  const auto norm = [&](const std::string& name) {
    w.add(name + ".weight", GGML_TYPE_F32, {e}, constant_fill(1.0f));
    w.add(name + ".bias", GGML_TYPE_F32, {e}, constant_fill(0.0f));
  };
  const auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    w.add(name + ".weight", weight_type, {in, out}, random_fill(seed, scale(in)));
    w.add(name + ".bias", GGML_TYPE_F32, {out}, random_fill(seed, 0.02f));
  };
  w.add("token_embd.weight", weight_type, {e, s.n_vocab}, random_fill(seed, 1.0f));
  w.add("token_types.weight", GGML_TYPE_F32, {e, 2}, random_fill(seed, 0.1f));
  w.add("position_embd.weight", weight_type, {e, s.n_ctx}, random_fill(seed, 0.1f));
  norm("token_embd_norm");
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    linear(b + "attn_q", e, e);
    linear(b + "attn_k", e, e);
    linear(b + "attn_v", e, e);
    linear(b + "attn_output", e, e);
    norm(b + "attn_output_norm");
    linear(b + "ffn_up", e, ff);
    linear(b + "ffn_down", ff, e);
    norm(b + "layer_output_norm");
  }
  w.write(path);

  EmbedSynthReport report;
  const auto ue = static_cast<uint64_t>(e), uff = static_cast<uint64_t>(ff);
  const uint64_t per_layer = 4 * (ue * ue + ue) + 2 * ue * uff + uff + ue + 4 * ue;
  report.parameters = ue * (static_cast<uint64_t>(s.n_vocab) + 2 + static_cast<uint64_t>(s.n_ctx)) +
                      2 * ue + per_layer * static_cast<uint64_t>(s.n_layer);
  report.file_bytes = std::filesystem::file_size(path);
  return report;
}

}  // namespace mmserve::synth
