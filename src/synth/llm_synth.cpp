#include "synth/llm_synth.h"

#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "engine/backend.h"
#include "engine/text_model.h"
#include "synth/gguf_stream_writer.h"
#include "synth/vlm_vocab.h"

namespace mmserve::synth {
namespace {

void require(bool ok, const std::string& message, const char* field) {
  if (!ok) throw Error(ErrorCode::kInvalidInput, message, field);
}

void check(const LlmShape& s) {
  require(s.n_embd > 0 && s.n_layer > 0 && s.n_ff > 0 && s.n_ctx > 0, "all sizes must be positive",
          "shape");
  require(s.n_head > 0 && s.n_embd % s.n_head == 0, "n_embd must be a multiple of n_head", "heads");
  require(s.n_head_kv > 0 && s.n_head % s.n_head_kv == 0, "n_head must be a multiple of n_head_kv",
          "kv_heads");
  require(s.n_expert == 0 || (s.n_expert_used > 0 && s.n_expert_used <= s.n_expert),
          "experts used must be between 1 and the number of experts", "experts");
  require(s.n_vocab >= 512, "the vocabulary needs at least 512 tokens", "vocab");
}

// The generated SentencePiece vocabulary with the family's special tokens, padded with unused
// pieces to the shape's size so the output layer costs what the real model's does.
Vocab padded_vocab(int32_t n_vocab, const std::vector<std::string>& special_tokens) {
  Vocab v = make_gemma_like_vocab();
  constexpr int32_t kControl = 3;
  for (const auto& t : special_tokens) {
    require(!t.empty() && t.size() <= 64, "a special token must be 1 to 64 bytes",
            "special_tokens");
    if (std::find(v.tokens.begin(), v.tokens.end(), t) != v.tokens.end()) continue;
    v.tokens.push_back(t);
    v.scores.push_back(0.0f);
    v.types.push_back(kControl);
  }
  require(static_cast<int32_t>(v.tokens.size()) <= n_vocab,
          "the vocabulary is too small for the special tokens", "vocab");
  constexpr int32_t kUnused = 5;
  for (auto i = static_cast<int32_t>(v.tokens.size()); i < n_vocab; ++i) {
    v.tokens.push_back("<unused_" + std::to_string(i) + ">");
    v.scores.push_back(-1e4f);
    v.types.push_back(kUnused);
  }
  v.tokens.resize(static_cast<size_t>(n_vocab));
  v.scores.resize(static_cast<size_t>(n_vocab));
  v.types.resize(static_cast<size_t>(n_vocab));
  return v;
}

void write_float_model(const std::string& path, const LlmShape& s, int weight_type, uint64_t seed,
                       const LlmSynthOptions& options) {
  const Vocab vocab = padded_vocab(s.n_vocab, options.special_tokens);
  GgufStreamWriter w(static_cast<size_t>(4 + 12 * s.n_layer));
  gguf_context* kv = w.kv();
  const auto u32 = [](int32_t v) { return static_cast<uint32_t>(v); };
  gguf_set_val_str(kv, "general.architecture", "llama");
  gguf_set_val_str(kv, "general.name", "mmserve synthetic LLM (random weights)");
  gguf_set_val_u32(kv, "general.file_type", weight_type == GGML_TYPE_F16 ? 1 : 0);
  gguf_set_val_u32(kv, "llama.context_length", u32(s.n_ctx));
  gguf_set_val_u32(kv, "llama.embedding_length", u32(s.n_embd));
  gguf_set_val_u32(kv, "llama.block_count", u32(s.n_layer));
  gguf_set_val_u32(kv, "llama.feed_forward_length", u32(s.n_ff));
  gguf_set_val_u32(kv, "llama.attention.head_count", u32(s.n_head));
  gguf_set_val_u32(kv, "llama.attention.head_count_kv", u32(s.n_head_kv));
  gguf_set_val_u32(kv, "llama.rope.dimension_count", u32(s.n_embd / s.n_head));
  gguf_set_val_f32(kv, "llama.rope.freq_base", 500000.0f);
  gguf_set_val_f32(kv, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_u32(kv, "llama.vocab_size", u32(s.n_vocab));
  if (s.n_expert > 0) {
    gguf_set_val_u32(kv, "llama.expert_count", u32(s.n_expert));
    gguf_set_val_u32(kv, "llama.expert_used_count", u32(s.n_expert_used));
  }
  gguf_set_val_str(kv, "tokenizer.ggml.model", "llama");
  gguf_set_val_str(kv, "tokenizer.ggml.pre", "default");
  std::vector<const char*> pieces;
  pieces.reserve(vocab.tokens.size());
  for (const auto& t : vocab.tokens) pieces.push_back(t.c_str());
  gguf_set_arr_str(kv, "tokenizer.ggml.tokens", pieces.data(), pieces.size());
  gguf_set_arr_data(kv, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, vocab.scores.data(),
                    vocab.scores.size());
  gguf_set_arr_data(kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, vocab.types.data(),
                    vocab.types.size());
  gguf_set_val_u32(kv, "tokenizer.ggml.bos_token_id", u32(vocab.bos_id));
  gguf_set_val_u32(kv, "tokenizer.ggml.eos_token_id", u32(vocab.eos_id));
  gguf_set_val_u32(kv, "tokenizer.ggml.unknown_token_id", u32(vocab.unk_id));
  gguf_set_val_u32(kv, "tokenizer.ggml.padding_token_id", u32(vocab.pad_id));
  gguf_set_val_bool(kv, "tokenizer.ggml.add_bos_token", true);
  // A chat family's tokenizer (BPE in Qwen's and Mistral's files) puts no space before the
  // text after a special token, or the template's "assistant\n" would not be what it wrote.
  gguf_set_val_bool(kv, "tokenizer.ggml.add_space_prefix", options.chat_template.empty());
  if (!options.chat_template.empty()) {
    gguf_set_val_str(kv, "tokenizer.chat_template", options.chat_template.c_str());
  }

  const int64_t e = s.n_embd;
  const int64_t kv_dim = e / s.n_head * s.n_head_kv;
  const int64_t ff = s.n_ff;
  const auto scale = [](int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); };
  w.add("token_embd.weight", weight_type, {e, s.n_vocab}, random_fill(seed, 1.0f));
  w.add("output_norm.weight", GGML_TYPE_F32, {e}, constant_fill(1.0f));
  if (!s.tied_embeddings)
    w.add("output.weight", weight_type, {e, s.n_vocab}, random_fill(seed, scale(e)));
  for (int32_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    w.add(b + "attn_norm.weight", GGML_TYPE_F32, {e}, constant_fill(1.0f));
    w.add(b + "attn_q.weight", weight_type, {e, e}, random_fill(seed, scale(e)));
    w.add(b + "attn_k.weight", weight_type, {e, kv_dim}, random_fill(seed, scale(e)));
    w.add(b + "attn_v.weight", weight_type, {e, kv_dim}, random_fill(seed, scale(e)));
    w.add(b + "attn_output.weight", weight_type, {e, e}, random_fill(seed, scale(e)));
    w.add(b + "ffn_norm.weight", GGML_TYPE_F32, {e}, constant_fill(1.0f));
    if (s.n_expert == 0) {
      w.add(b + "ffn_gate.weight", weight_type, {e, ff}, random_fill(seed, scale(e)));
      w.add(b + "ffn_up.weight", weight_type, {e, ff}, random_fill(seed, scale(e)));
      w.add(b + "ffn_down.weight", weight_type, {ff, e}, random_fill(seed, scale(ff)));
    } else {
      const int64_t x = s.n_expert;
      w.add(b + "ffn_gate_inp.weight", GGML_TYPE_F32, {e, x}, random_fill(seed, scale(e)));
      w.add(b + "ffn_gate_exps.weight", weight_type, {e, ff, x}, random_fill(seed, scale(e)));
      w.add(b + "ffn_up_exps.weight", weight_type, {e, ff, x}, random_fill(seed, scale(e)));
      w.add(b + "ffn_down_exps.weight", weight_type, {ff, e, x}, random_fill(seed, scale(ff)));
    }
  }
  w.write(path);
}

}  // namespace

LlmShape llm_preset(const std::string& name) {
  if (name == "tiny") return {};
  if (name == "llama-3.2-1b") {
    return {.n_vocab = 128256,
            .n_embd = 2048,
            .n_layer = 16,
            .n_head = 32,
            .n_head_kv = 8,
            .n_ff = 8192,
            .n_ctx = 131072};
  }
  if (name == "moe-small") {
    return {.n_vocab = 32000,
            .n_embd = 768,
            .n_layer = 8,
            .n_head = 12,
            .n_head_kv = 4,
            .n_ff = 1536,
            .n_ctx = 32768,
            .n_expert = 8,
            .n_expert_used = 2};
  }
  throw Error(ErrorCode::kInvalidInput,
              "unknown preset '" + name + "'; presets: tiny, llama-3.2-1b, moe-small", "preset");
}

LlmSynthReport write_synthetic_llm(const std::string& path, const LlmSynthOptions& options) {
  check(options.shape);
  const std::string& type = options.type;
  llama_ftype ftype = LLAMA_FTYPE_ALL_F32;
  if (type == "q8_0")
    ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
  else if (type == "q4_k_m")
    ftype = LLAMA_FTYPE_MOSTLY_Q4_K_M;
  else if (type != "f16" && type != "f32") {
    throw Error(ErrorCode::kInvalidInput,
                "unknown type '" + type + "'; types: f32, f16, q8_0, q4_k_m", "type");
  }
  const int weight_type = type == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
  if (ftype == LLAMA_FTYPE_ALL_F32) {
    write_float_model(path, options.shape, weight_type, options.seed, options);
  } else {
    // Quantize from F16 with llama.cpp's quantizer, as users make their Q8_0 and Q4_K_M files.
    const std::string f16 = path + ".f16.tmp";
    write_float_model(f16, options.shape, GGML_TYPE_F16, options.seed, options);
    engine::ensure_backend_initialized();
    auto params = llama_model_quantize_default_params();
    params.ftype = ftype;
    params.nthread = options.threads > 0 ? options.threads : engine::default_thread_count();
    const uint32_t rc = llama_model_quantize(f16.c_str(), path.c_str(), &params);
    std::filesystem::remove(f16);
    if (rc != 0) throw Error(ErrorCode::kInternal, "quantizing to " + type + " failed", "type");
  }
  LlmSynthReport report;
  const auto& s = options.shape;
  const uint64_t e = static_cast<uint64_t>(s.n_embd), ff = static_cast<uint64_t>(s.n_ff);
  const uint64_t kv_dim = e / static_cast<uint64_t>(s.n_head) * static_cast<uint64_t>(s.n_head_kv);
  const uint64_t experts = s.n_expert > 0 ? static_cast<uint64_t>(s.n_expert) : 1;
  const uint64_t per_layer = 2 * e + 2 * e * e + 2 * e * kv_dim + 3 * e * ff * experts +
                             (s.n_expert > 0 ? e * experts : 0);
  report.parameters = static_cast<uint64_t>(s.n_vocab) * e * (s.tied_embeddings ? 1 : 2) + e +
                      per_layer * static_cast<uint64_t>(s.n_layer);
  report.file_bytes = std::filesystem::file_size(path);
  const Vocab vocab = padded_vocab(s.n_vocab, options.special_tokens);
  for (const auto& t : options.special_tokens) {
    const auto it = std::find(vocab.tokens.begin(), vocab.tokens.end(), t);
    report.special_token_ids.push_back(static_cast<int32_t>(it - vocab.tokens.begin()));
  }
  return report;
}

}  // namespace mmserve::synth
