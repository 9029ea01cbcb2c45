#include "synth/vlm_synth.h"

#include <ggml.h>
#include <gguf.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "synth/vlm_vocab.h"

namespace mmserve::synth {
namespace {

// splitmix64: the same stream on every platform and standard library (std::*_distribution is
// not), so a seed names the same weights everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float uniform() {
    return static_cast<float>(static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0);
  }

 private:
  uint64_t state_;
};

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

// One GGUF file being built: key/values plus F32 tensors held in a ggml context.
class GgufFile {
 public:
  GgufFile(size_t data_bytes, size_t n_tensors, uint64_t seed) : rng_(seed) {
    ggml_init_params params{data_bytes + (n_tensors + 8) * ggml_tensor_overhead(), nullptr, false};
    ctx_.reset(ggml_init(params));
    gguf_.reset(gguf_init_empty());
    if (!ctx_ || !gguf_) throw Error(ErrorCode::kInternal, "out of memory building a GGUF file");
  }
  gguf_context* kv() { return gguf_.get(); }

  // A tensor with values uniform in [-scale*sqrt(3), scale*sqrt(3)) (standard deviation `scale`)
  // plus `offset`.
  float* tensor(const std::string& name, std::initializer_list<int64_t> shape, float scale,
                float offset = 0.0f) {
    int64_t ne[4] = {1, 1, 1, 1};
    int dims = 0;
    for (const int64_t n : shape) ne[dims++] = n;
    ggml_tensor* t = ggml_new_tensor(ctx_.get(), GGML_TYPE_F32, dims, ne);
    ggml_set_name(t, name.c_str());
    auto* data = static_cast<float*>(t->data);
    const float a = scale * std::sqrt(3.0f);
    for (int64_t i = 0; i < ggml_nelements(t); ++i) data[i] = offset + a * rng_.uniform();
    gguf_add_tensor(gguf_.get(), t);
    return data;
  }

  void write(const std::string& path) {
    if (!gguf_write_to_file(gguf_.get(), path.c_str(), false)) {
      throw Error(ErrorCode::kInternal, "cannot write " + path, "output");
    }
  }

 private:
  std::unique_ptr<ggml_context, GgmlDeleter> ctx_;
  std::unique_ptr<gguf_context, GgufDeleter> gguf_;
  Rng rng_;
};

void require(bool ok, const std::string& message, const char* field) {
  if (!ok) throw Error(ErrorCode::kInvalidInput, message, field);
}

void check_shape(const VlmShape& s, VlmFamily family) {
  require(s.n_embd >= 8 && s.n_layer >= 1 && s.n_head >= 1 && s.head_dim >= 2 && s.n_ff >= 1,
          "the language model needs embd >= 8, layers, heads, head-dim and ff >= 1", "embd");
  require(s.head_dim % 2 == 0, "head-dim must be even (rotary embeddings)", "head-dim");
  require(s.n_head_kv >= 1 && s.n_head % s.n_head_kv == 0, "heads must be a multiple of kv-heads",
          "kv-heads");
  require(s.n_ctx >= 64, "ctx must be at least 64", "ctx");
  require(s.sliding_window >= 0, "sliding-window must be >= 0", "sliding-window");
  require(s.patch_size >= 1 && s.image_size % s.patch_size == 0,
          "image-size must be a multiple of patch-size", "image-size");
  const int32_t side = s.image_size / s.patch_size;
  require(s.pool >= 1 && side % s.pool == 0,
          "image-size / patch-size (" + std::to_string(side) + ") must be a multiple of pool",
          "pool");
  require(s.v_embd >= 8 && s.v_head >= 1 && s.v_embd % s.v_head == 0,
          "vision-embd must be a multiple of vision-heads", "vision-embd");
  require(s.v_layer >= 1 && s.v_ff >= 1, "vision-layers and vision-ff must be >= 1",
          "vision-layers");
  if (family == VlmFamily::kGemma3) {
    // libmtmd takes an FFN whose down projection is n_embd wide for a legacy swapped layout.
    require(s.v_ff != s.v_embd, "vision-ff must differ from vision-embd", "vision-ff");
  } else {
    // Pixtral's 2D RoPE turns each half of a head by rows and by columns.
    require((s.v_embd / s.v_head) % 4 == 0, "vision-embd / vision-heads must be a multiple of 4",
            "vision-heads");
  }
}

// The Gemma-like vocabulary plus `specials` as control tokens (existing pieces keep their id).
Vocab family_vocab(const std::vector<std::string>& specials) {
  Vocab v = make_gemma_like_vocab();
  constexpr int32_t kControl = 3;
  for (const auto& t : specials) {
    if (std::find(v.tokens.begin(), v.tokens.end(), t) != v.tokens.end()) continue;
    v.tokens.push_back(t);
    v.scores.push_back(0.0f);
    v.types.push_back(kControl);
  }
  return v;
}

void set_tokenizer(gguf_context* kv_ctx, const Vocab& vocab, const std::string& chat_template) {
  gguf_set_val_str(kv_ctx, "tokenizer.ggml.model", "llama");
  gguf_set_val_str(kv_ctx, "tokenizer.ggml.pre", "default");
  std::vector<const char*> token_ptrs;
  for (const auto& t : vocab.tokens) token_ptrs.push_back(t.c_str());
  gguf_set_arr_str(kv_ctx, "tokenizer.ggml.tokens", token_ptrs.data(), token_ptrs.size());
  gguf_set_arr_data(kv_ctx, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, vocab.scores.data(),
                    vocab.scores.size());
  gguf_set_arr_data(kv_ctx, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, vocab.types.data(),
                    vocab.types.size());
  gguf_set_val_u32(kv_ctx, "tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
  gguf_set_val_u32(kv_ctx, "tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
  gguf_set_val_u32(kv_ctx, "tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(vocab.unk_id));
  gguf_set_val_u32(kv_ctx, "tokenizer.ggml.padding_token_id", static_cast<uint32_t>(vocab.pad_id));
  gguf_set_val_bool(kv_ctx, "tokenizer.ggml.add_bos_token", true);
  gguf_set_val_bool(kv_ctx, "tokenizer.ggml.add_eos_token", false);
  gguf_set_val_bool(kv_ctx, "tokenizer.ggml.add_space_prefix", false);
  gguf_set_val_str(kv_ctx, "tokenizer.chat_template", chat_template.c_str());
}

// A text layer's attention projections, the part both families' layers share (in this order).
void attention_tensors(GgufFile& f, const std::string& b, int32_t n_embd, int64_t q, int64_t kv) {
  const float e = static_cast<float>(n_embd);
  f.tensor(b + "attn_norm.weight", {n_embd}, 0.0f, 1.0f);
  f.tensor(b + "attn_q.weight", {n_embd, q}, 1.0f / std::sqrt(e));
  f.tensor(b + "attn_k.weight", {n_embd, kv}, 1.0f / std::sqrt(e));
  f.tensor(b + "attn_v.weight", {n_embd, kv}, 1.0f / std::sqrt(e));
  f.tensor(b + "attn_output.weight", {q, n_embd}, 1.0f / std::sqrt(static_cast<float>(q)));
}

// The output head, wide enough that greedy choices are clear-cut; only normal pieces are ever
// predicted (control tokens get zero logits).
void output_head(GgufFile& f, const Vocab& vocab, int32_t n_embd) {
  const auto n_vocab = static_cast<int64_t>(vocab.tokens.size());
  float* out = f.tensor("output.weight", {n_embd, n_vocab}, 4.0f / std::sqrt(float(n_embd)));
  for (int64_t t = 0; t < n_vocab; ++t) {
    if (vocab.types[static_cast<size_t>(t)] != 1) {
      std::memset(out + t * n_embd, 0, sizeof(float) * static_cast<size_t>(n_embd));
    }
  }
}

void write_gemma3_model(const VlmShape& s, uint64_t seed, const std::string& chat_template,
                        const std::string& path) {
  const Vocab vocab = make_gemma_like_vocab();
  const auto n_vocab = static_cast<int64_t>(vocab.tokens.size());
  const int64_t q = static_cast<int64_t>(s.head_dim) * s.n_head;
  const int64_t kv = static_cast<int64_t>(s.head_dim) * s.n_head_kv;
  const int64_t per_layer = 2 * s.n_embd * q + 2 * s.n_embd * kv + 3 * int64_t{s.n_embd} * s.n_ff +
                            4 * s.n_embd + 2 * s.head_dim;
  const int64_t floats = 2 * n_vocab * s.n_embd + s.n_embd + per_layer * s.n_layer;
  GgufFile f(static_cast<size_t>(floats) * sizeof(float) + (1u << 16),
             static_cast<size_t>(3 + 13 * s.n_layer), seed);

  gguf_context* kv_ctx = f.kv();
  gguf_set_val_str(kv_ctx, "general.architecture", "gemma3");
  gguf_set_val_str(kv_ctx, "general.name", "mmserve synthetic VLM (Gemma 3 shape, random weights)");
  gguf_set_val_u32(kv_ctx, "general.file_type", 0);  // all F32
  gguf_set_val_u32(kv_ctx, "gemma3.context_length", static_cast<uint32_t>(s.n_ctx));
  gguf_set_val_u32(kv_ctx, "gemma3.embedding_length", static_cast<uint32_t>(s.n_embd));
  gguf_set_val_u32(kv_ctx, "gemma3.block_count", static_cast<uint32_t>(s.n_layer));
  gguf_set_val_u32(kv_ctx, "gemma3.feed_forward_length", static_cast<uint32_t>(s.n_ff));
  gguf_set_val_u32(kv_ctx, "gemma3.attention.head_count", static_cast<uint32_t>(s.n_head));
  gguf_set_val_u32(kv_ctx, "gemma3.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  gguf_set_val_u32(kv_ctx, "gemma3.attention.key_length", static_cast<uint32_t>(s.head_dim));
  gguf_set_val_u32(kv_ctx, "gemma3.attention.value_length", static_cast<uint32_t>(s.head_dim));
  gguf_set_val_f32(kv_ctx, "gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  gguf_set_val_f32(kv_ctx, "gemma3.rope.freq_base", 1000000.0f);
  if (s.sliding_window > 0) {
    gguf_set_val_u32(kv_ctx, "gemma3.attention.sliding_window",
                     static_cast<uint32_t>(s.sliding_window));
    gguf_set_val_f32(kv_ctx, "gemma3.rope.freq_base_swa", 10000.0f);
  }
  set_tokenizer(kv_ctx, vocab, chat_template.empty() ? gemma_chat_template() : chat_template);

  // Scales keep every stage near unit RMS (llama.cpp multiplies token embeddings by
  // sqrt(n_embd) for Gemma).
  const float e = static_cast<float>(s.n_embd);
  f.tensor("token_embd.weight", {s.n_embd, n_vocab}, 1.0f / std::sqrt(e));
  output_head(f, vocab, s.n_embd);
  f.tensor("output_norm.weight", {s.n_embd}, 0.0f, 1.0f);
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    attention_tensors(f, b, s.n_embd, q, kv);
    f.tensor(b + "attn_q_norm.weight", {s.head_dim}, 0.0f, 1.0f);
    f.tensor(b + "attn_k_norm.weight", {s.head_dim}, 0.0f, 1.0f);
    f.tensor(b + "post_attention_norm.weight", {s.n_embd}, 0.0f, 1.0f);
    f.tensor(b + "ffn_norm.weight", {s.n_embd}, 0.0f, 1.0f);
    f.tensor(b + "ffn_gate.weight", {s.n_embd, s.n_ff}, 1.0f / std::sqrt(e));
    f.tensor(b + "ffn_up.weight", {s.n_embd, s.n_ff}, 1.0f / std::sqrt(e));
    f.tensor(b + "ffn_down.weight", {s.n_ff, s.n_embd},
             1.0f / std::sqrt(static_cast<float>(s.n_ff)));
    f.tensor(b + "post_ffw_norm.weight", {s.n_embd}, 0.0f, 1.0f);
  }
  f.write(path);
}

// Magistral Small 1.2's language model: llama.cpp's "llama" architecture with explicit head
// width (Mistral Small's 128-wide heads do not divide its embedding width) and rope base 1e9.
// Returns the [IMG_BREAK] token's embedding row: real Pixtral projectors carry a copy of it.
std::vector<float> write_magistral_model(const VlmShape& s, uint64_t seed,
                                         const std::string& chat_template,
                                         const std::string& path) {
  const Vocab vocab = family_vocab(magistral_special_tokens());
  const auto n_vocab = static_cast<int64_t>(vocab.tokens.size());
  const int64_t q = static_cast<int64_t>(s.head_dim) * s.n_head;
  const int64_t kv = static_cast<int64_t>(s.head_dim) * s.n_head_kv;
  const int64_t per_layer =
      2 * s.n_embd * q + 2 * s.n_embd * kv + 3 * int64_t{s.n_embd} * s.n_ff + 2 * s.n_embd;
  const int64_t floats = 2 * n_vocab * s.n_embd + s.n_embd + per_layer * s.n_layer;
  GgufFile f(static_cast<size_t>(floats) * sizeof(float) + (1u << 16),
             static_cast<size_t>(3 + 9 * s.n_layer), seed);

  gguf_context* kv_ctx = f.kv();
  const auto u32 = [](int32_t v) { return static_cast<uint32_t>(v); };
  gguf_set_val_str(kv_ctx, "general.architecture", "llama");
  gguf_set_val_str(kv_ctx, "general.name",
                   "mmserve synthetic VLM (Magistral Small 1.2 shape, random weights)");
  gguf_set_val_u32(kv_ctx, "general.file_type", 0);  // all F32
  gguf_set_val_u32(kv_ctx, "llama.context_length", u32(s.n_ctx));
  gguf_set_val_u32(kv_ctx, "llama.embedding_length", u32(s.n_embd));
  gguf_set_val_u32(kv_ctx, "llama.block_count", u32(s.n_layer));
  gguf_set_val_u32(kv_ctx, "llama.feed_forward_length", u32(s.n_ff));
  gguf_set_val_u32(kv_ctx, "llama.attention.head_count", u32(s.n_head));
  gguf_set_val_u32(kv_ctx, "llama.attention.head_count_kv", u32(s.n_head_kv));
  gguf_set_val_u32(kv_ctx, "llama.attention.key_length", u32(s.head_dim));
  gguf_set_val_u32(kv_ctx, "llama.attention.value_length", u32(s.head_dim));
  gguf_set_val_u32(kv_ctx, "llama.rope.dimension_count", u32(s.head_dim));
  gguf_set_val_f32(kv_ctx, "llama.rope.freq_base", 1000000000.0f);
  gguf_set_val_f32(kv_ctx, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_u32(kv_ctx, "llama.vocab_size", static_cast<uint32_t>(n_vocab));
  set_tokenizer(kv_ctx, vocab, chat_template);

  const float e = static_cast<float>(s.n_embd);
  const float* embd = f.tensor("token_embd.weight", {s.n_embd, n_vocab}, 1.0f);
  const auto brk = static_cast<int64_t>(
      std::find(vocab.tokens.begin(), vocab.tokens.end(), "[IMG_BREAK]") - vocab.tokens.begin());
  std::vector<float> img_break(embd + brk * s.n_embd, embd + (brk + 1) * s.n_embd);
  output_head(f, vocab, s.n_embd);
  f.tensor("output_norm.weight", {s.n_embd}, 0.0f, 1.0f);
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    attention_tensors(f, b, s.n_embd, q, kv);
    f.tensor(b + "ffn_norm.weight", {s.n_embd}, 0.0f, 1.0f);
    f.tensor(b + "ffn_gate.weight", {s.n_embd, s.n_ff}, 1.0f / std::sqrt(e));
    f.tensor(b + "ffn_up.weight", {s.n_embd, s.n_ff}, 1.0f / std::sqrt(e));
    f.tensor(b + "ffn_down.weight", {s.n_ff, s.n_embd},
             1.0f / std::sqrt(static_cast<float>(s.n_ff)));
  }
  f.write(path);
  return img_break;
}

void write_gemma3_projector(const VlmShape& s, uint64_t seed, const std::string& path) {
  const int64_t patches = int64_t{s.image_size / s.patch_size} * (s.image_size / s.patch_size);
  const int64_t patch_in = 3 * int64_t{s.patch_size} * s.patch_size;
  const int64_t per_layer =
      4 * int64_t{s.v_embd} * s.v_embd + 2 * int64_t{s.v_embd} * s.v_ff + 9 * s.v_embd + s.v_ff;
  const int64_t floats = patch_in * s.v_embd + s.v_embd + patches * s.v_embd +
                         per_layer * s.v_layer + 3 * s.v_embd + int64_t{s.n_embd} * s.v_embd;
  GgufFile f(static_cast<size_t>(floats) * sizeof(float) + (1u << 16),
             static_cast<size_t>(8 + 16 * s.v_layer), seed ^ 0x5eed5eed5eedULL);

  gguf_context* kv = f.kv();
  gguf_set_val_str(kv, "general.architecture", "clip");
  gguf_set_val_str(kv, "general.type", "mmproj");
  gguf_set_val_str(kv, "general.name", "mmserve synthetic VLM projector (Gemma 3 shape)");
  gguf_set_val_u32(kv, "general.file_type", 0);
  gguf_set_val_str(kv, "clip.projector_type", "gemma3");
  gguf_set_val_bool(kv, "clip.has_vision_encoder", true);
  gguf_set_val_bool(kv, "clip.use_gelu", true);
  gguf_set_val_u32(kv, "clip.vision.image_size", static_cast<uint32_t>(s.image_size));
  gguf_set_val_u32(kv, "clip.vision.patch_size", static_cast<uint32_t>(s.patch_size));
  gguf_set_val_u32(kv, "clip.vision.embedding_length", static_cast<uint32_t>(s.v_embd));
  gguf_set_val_u32(kv, "clip.vision.feed_forward_length", static_cast<uint32_t>(s.v_ff));
  gguf_set_val_u32(kv, "clip.vision.block_count", static_cast<uint32_t>(s.v_layer));
  gguf_set_val_u32(kv, "clip.vision.attention.head_count", static_cast<uint32_t>(s.v_head));
  gguf_set_val_f32(kv, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
  gguf_set_val_u32(kv, "clip.vision.projection_dim", static_cast<uint32_t>(s.n_embd));
  const float half[3] = {0.5f, 0.5f, 0.5f};  // SigLIP's normalisation, as Gemma 3 ships it
  gguf_set_arr_data(kv, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, half, 3);
  gguf_set_arr_data(kv, "clip.vision.image_std", GGUF_TYPE_FLOAT32, half, 3);
  if (s.pool != 4) {  // libmtmd's default for Gemma 3 is 4
    gguf_set_val_u32(kv, "clip.vision.projector.scale_factor", static_cast<uint32_t>(s.pool));
  }

  const float ve = static_cast<float>(s.v_embd);
  f.tensor("v.patch_embd.weight", {s.patch_size, s.patch_size, 3, s.v_embd},
           1.0f / std::sqrt(static_cast<float>(patch_in)));
  f.tensor("v.patch_embd.bias", {s.v_embd}, 0.0f);
  // Small position embeddings: what a patch shows should outweigh where it is.
  f.tensor("v.position_embd.weight", {s.v_embd, patches}, 0.1f);
  for (int i = 0; i < s.v_layer; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      f.tensor(b + w + ".weight", {s.v_embd, s.v_embd}, 1.0f / std::sqrt(ve));
      f.tensor(b + w + ".bias", {s.v_embd}, 0.0f);
    }
    f.tensor(b + "ln1.weight", {s.v_embd}, 0.0f, 1.0f);
    f.tensor(b + "ln1.bias", {s.v_embd}, 0.0f);
    f.tensor(b + "ln2.weight", {s.v_embd}, 0.0f, 1.0f);
    f.tensor(b + "ln2.bias", {s.v_embd}, 0.0f);
    f.tensor(b + "ffn_up.weight", {s.v_embd, s.v_ff}, 1.0f / std::sqrt(ve));
    f.tensor(b + "ffn_up.bias", {s.v_ff}, 0.0f);
    f.tensor(b + "ffn_down.weight", {s.v_ff, s.v_embd},
             1.0f / std::sqrt(static_cast<float>(s.v_ff)));
    f.tensor(b + "ffn_down.bias", {s.v_embd}, 0.0f);
  }
  f.tensor("v.post_ln.weight", {s.v_embd}, 0.0f, 1.0f);
  f.tensor("v.post_ln.bias", {s.v_embd}, 0.0f);
  f.tensor("mm.soft_emb_norm.weight", {s.v_embd}, 0.0f, 1.0f);
  f.tensor("mm.input_projection.weight", {s.n_embd, s.v_embd}, 1.0f / std::sqrt(ve));
  f.write(path);
}

// Pixtral as Mistral Small 3.1/3.2 and Magistral Small 1.2 ship it (convert_hf_to_gguf's
// names): patch embedding without bias, RMS pre-norm, 2D-RoPE attention without biases, SiLU
// gated FFNs, then RMS norm + the spatial patch merger (pool x pool patches into one), a GELU
// MLP to the text width, and the [IMG_BREAK] embedding libmtmd puts after each row.
void write_pixtral_projector(const VlmShape& s, uint64_t seed, const std::vector<float>& img_break,
                             const std::string& path) {
  const int64_t patch_in = 3 * int64_t{s.patch_size} * s.patch_size;
  const int64_t ve = s.v_embd, te = s.n_embd, merged = ve * s.pool * s.pool;
  const int64_t per_layer = 4 * ve * ve + 3 * ve * s.v_ff + 2 * ve;
  const int64_t floats =
      patch_in * ve + ve + per_layer * s.v_layer + ve + merged * ve + ve * te + te * te + te;
  GgufFile f(static_cast<size_t>(floats) * sizeof(float) + (1u << 16),
             static_cast<size_t>(8 + 9 * s.v_layer), seed ^ 0x5eed5eed5eedULL);

  gguf_context* kv = f.kv();
  const auto u32 = [](int32_t v) { return static_cast<uint32_t>(v); };
  gguf_set_val_str(kv, "general.architecture", "clip");
  gguf_set_val_str(kv, "general.type", "mmproj");
  gguf_set_val_str(kv, "general.name",
                   "mmserve synthetic VLM projector (Pixtral, Magistral shape)");
  gguf_set_val_u32(kv, "general.file_type", 0);
  gguf_set_val_str(kv, "clip.projector_type", "pixtral");
  gguf_set_val_bool(kv, "clip.has_vision_encoder", true);
  gguf_set_val_bool(kv, "clip.use_silu", true);
  gguf_set_val_u32(kv, "clip.vision.image_size", u32(s.image_size));
  gguf_set_val_u32(kv, "clip.vision.patch_size", u32(s.patch_size));
  gguf_set_val_u32(kv, "clip.vision.embedding_length", u32(s.v_embd));
  gguf_set_val_u32(kv, "clip.vision.feed_forward_length", u32(s.v_ff));
  gguf_set_val_u32(kv, "clip.vision.block_count", u32(s.v_layer));
  gguf_set_val_u32(kv, "clip.vision.attention.head_count", u32(s.v_head));
  gguf_set_val_f32(kv, "clip.vision.attention.layer_norm_epsilon", 1e-5f);
  gguf_set_val_u32(kv, "clip.vision.projection_dim", u32(s.n_embd));
  // CLIP's normalisation, as Pixtral's preprocessor config gives it.
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  const float std_dev[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  gguf_set_arr_data(kv, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
  gguf_set_arr_data(kv, "clip.vision.image_std", GGUF_TYPE_FLOAT32, std_dev, 3);
  // Pixtral 12B (pool 1) has no merger; Mistral Small 3.1+ merge 2 x 2 patches.
  if (s.pool > 1) gguf_set_val_u32(kv, "clip.vision.spatial_merge_size", u32(s.pool));

  const float vef = static_cast<float>(ve);
  f.tensor("v.patch_embd.weight", {s.patch_size, s.patch_size, 3, ve},
           1.0f / std::sqrt(static_cast<float>(patch_in)));
  f.tensor("v.pre_ln.weight", {ve}, 0.0f, 1.0f);
  for (int i = 0; i < s.v_layer; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      f.tensor(b + w + ".weight", {ve, ve}, 1.0f / std::sqrt(vef));
    }
    f.tensor(b + "ln1.weight", {ve}, 0.0f, 1.0f);
    f.tensor(b + "ln2.weight", {ve}, 0.0f, 1.0f);
    f.tensor(b + "ffn_gate.weight", {ve, s.v_ff}, 1.0f / std::sqrt(vef));
    f.tensor(b + "ffn_up.weight", {ve, s.v_ff}, 1.0f / std::sqrt(vef));
    f.tensor(b + "ffn_down.weight", {s.v_ff, ve}, 1.0f / std::sqrt(static_cast<float>(s.v_ff)));
  }
  if (s.pool > 1) {
    f.tensor("mm.input_norm.weight", {ve}, 0.0f, 1.0f);
    f.tensor("mm.patch_merger.weight", {merged, ve}, 1.0f / std::sqrt(static_cast<float>(merged)));
  }
  f.tensor("mm.1.weight", {ve, te}, 1.0f / std::sqrt(vef));
  f.tensor("mm.2.weight", {te, te}, 1.0f / std::sqrt(static_cast<float>(te)));
  float* brk = f.tensor("v.token_embd.img_break", {te}, 0.0f);
  std::copy(img_break.begin(), img_break.end(), brk);
  f.write(path);
}

}  // namespace

VlmFamily vlm_family(const std::string& name) {
  if (name == "gemma3") return VlmFamily::kGemma3;
  if (name == "magistral") return VlmFamily::kMagistral;
  throw Error(ErrorCode::kInvalidInput,
              "unknown family '" + name + "'; families: gemma3, magistral", "family");
}

const std::vector<std::string>& magistral_special_tokens() {
  static const std::vector<std::string> tokens = {"[INST]",
                                                  "[/INST]",
                                                  "[SYSTEM_PROMPT]",
                                                  "[/SYSTEM_PROMPT]",
                                                  "[THINK]",
                                                  "[/THINK]",
                                                  "[TOOL_CALLS]",
                                                  "[ARGS]",
                                                  "[AVAILABLE_TOOLS]",
                                                  "[/AVAILABLE_TOOLS]",
                                                  "[TOOL_RESULTS]",
                                                  "[/TOOL_RESULTS]",
                                                  "[IMG]",
                                                  "[IMG_BREAK]",
                                                  "[IMG_END]"};
  return tokens;
}

int32_t vlm_tokens_per_image(const VlmShape& shape, VlmFamily family) {
  const int32_t side = shape.image_size / shape.patch_size / shape.pool;
  return family == VlmFamily::kMagistral ? side * side + side - 1 : side * side;
}

void write_synthetic_vlm(const VlmSynthOptions& options) {
  check_shape(options.shape, options.family);
  if (options.model_path.empty() || options.mmproj_path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "both output paths are needed", "output");
  }
  if (options.family == VlmFamily::kMagistral) {
    require(!options.chat_template.empty(),
            "the magistral family needs the model's chat template (its own Jinja file)",
            "chat-template-file");
    const auto img_break = write_magistral_model(options.shape, options.seed, options.chat_template,
                                                 options.model_path);
    write_pixtral_projector(options.shape, options.seed, img_break, options.mmproj_path);
    return;
  }
  write_gemma3_model(options.shape, options.seed, options.chat_template, options.model_path);
  write_gemma3_projector(options.shape, options.seed, options.mmproj_path);
}

}  // namespace mmserve::synth
