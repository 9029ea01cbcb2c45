#include "engine/model_shapes.h"

#include <cmath>

#include "core/error.h"

namespace mmserve::engine {
namespace {

uint64_t bytes_at(uint64_t params, double bits) {
  return static_cast<uint64_t>(std::ceil(static_cast<double>(params) * bits / 8.0));
}

const PublishedShape& shape_named(const std::string& prefix) {
  for (const auto& s : published_shapes()) {
    if (s.name.starts_with(prefix)) return s;
  }
  throw Error(ErrorCode::kInternal, "no published shape " + prefix);
}

// Pixtral's vision encoder as Mistral Small 3.x / Magistral ship it in mmproj-F16.gguf: 24
// layers of width 1024, 16 heads, 1540-pixel images in 14-pixel patches (about 0.88 GB).
GgufSummary magistral_projector() {
  GgufSummary p;
  p.architecture = "clip";
  p.name = "Magistral Small 1.2 vision encoder (mmproj F16)";
  const int64_t embd = 1024, ff = 4096, layers = 24, text_embd = 5120;
  const uint64_t params =
      static_cast<uint64_t>(layers * (4 * embd * embd + 2 * embd * ff) + 14 * 14 * 3 * embd +
                            4 * embd * text_embd + text_embd * text_embd);
  p.n_params = params;
  p.tensor_bytes = bytes_at(params, 16);
  p.file_bytes = p.tensor_bytes;
  p.projector = {.type = "pixtral",
                 .has_vision = true,
                 .image_size = 1540,
                 .patch_size = 14,
                 .n_embd = embd,
                 .n_layer = layers,
                 .n_head = 16,
                 .n_ff = ff};
  return p;
}

// Whisper large-v3: 32 encoder and 32 decoder layers of width 1280 (1550M parameters), F16.
SpeechModelShape whisper_large_v3() {
  return {.file_bytes = 3'095'033'483,
          .n_audio_ctx = 1500,
          .n_audio_state = 1280,
          .n_audio_layer = 32,
          .n_text_ctx = 448,
          .n_text_state = 1280,
          .n_text_layer = 32};
}

PlanInput text_input(const std::string& shape, const std::string& quant, int32_t parallel,
                     int32_t ctx) {
  PlanInput in;
  in.text = summary_from_shape(shape_named(shape), quant);
  in.parallel = parallel;
  in.ctx_size = ctx;
  return in;
}

PlanInput multimodal_input(int32_t parallel, int32_t ctx, int32_t speech_parallel) {
  PlanInput in = text_input("Magistral", "Q8_0", parallel, ctx);
  in.projector = magistral_projector();
  in.speech = whisper_large_v3();
  in.speech_parallel = speech_parallel;
  return in;
}

}  // namespace

double bits_per_weight(const std::string& quant) {
  if (quant == "F16" || quant == "BF16") return 16;
  if (quant == "Q8_0") return 8.5;
  if (quant == "Q4_K_M") return 4.85;
  throw Error(ErrorCode::kInvalidInput, "unknown quantization " + quant + " (F16, Q8_0, Q4_K_M)",
              "quant");
}

GgufSummary summary_from_shape(const PublishedShape& m, const std::string& quant) {
  const double bits = bits_per_weight(quant);
  GgufSummary s;
  s.architecture = m.architecture;
  s.name = m.name;
  s.file_type = quant;
  s.n_layer = m.n_layer;
  s.n_embd = m.n_embd;
  s.n_head = m.n_head;
  s.n_head_kv = m.n_head_kv;
  s.head_dim_k = s.head_dim_v = m.head_dim;
  s.n_ff = m.n_ff;
  s.n_vocab = m.n_vocab;
  s.n_ctx_train = m.n_ctx_train;
  s.n_expert = m.n_expert > 0 ? m.n_expert : -1;
  s.n_expert_used = m.n_expert_used > 0 ? m.n_expert_used : -1;
  s.n_ff_expert = m.n_ff_expert > 0 ? m.n_ff_expert : -1;
  const uint64_t attn = static_cast<uint64_t>(2 * m.n_embd * m.n_head * m.head_dim +
                                              2 * m.n_embd * m.n_head_kv * m.head_dim);
  const uint64_t ffn =
      m.n_expert > 0
          ? static_cast<uint64_t>(m.n_expert * 3 * m.n_embd * m.n_ff_expert + m.n_embd * m.n_expert)
          : static_cast<uint64_t>(3 * m.n_embd * m.n_ff);
  const uint64_t layer = attn + ffn + static_cast<uint64_t>(2 * m.n_embd);
  s.layer_bytes.assign(static_cast<size_t>(m.n_layer), bytes_at(layer, bits));
  const uint64_t embd = static_cast<uint64_t>(m.n_vocab * m.n_embd);
  s.token_embd_bytes = bytes_at(embd, bits);
  s.output_bytes =
      m.tied_embeddings ? 0 : bytes_at(embd, quant == "Q4_K_M" ? 6.5625 : bits);  // Q6_K head
  s.n_params = layer * static_cast<uint64_t>(m.n_layer) + embd * (m.tied_embeddings ? 1 : 2);
  s.tensor_bytes = s.token_embd_bytes + s.output_bytes;
  for (const uint64_t b : s.layer_bytes) s.tensor_bytes += b;
  s.file_bytes = s.tensor_bytes;
  s.n_tensors = m.n_layer * 9 + 3;
  return s;
}

const std::vector<PublishedShape>& published_shapes() {
  static const std::vector<PublishedShape> shapes = {
      // Mistral Small 3.2 (24B) text model: head_dim 128, so attention is 4096 wide, not 5120.
      {.name = "Magistral Small 1.2 (24B)",
       .architecture = "llama",
       .n_layer = 40,
       .n_embd = 5120,
       .n_head = 32,
       .n_head_kv = 8,
       .head_dim = 128,
       .n_ff = 32768,
       .n_vocab = 131072,
       .n_ctx_train = 131072},
      {.name = "Llama 3.1 8B",
       .architecture = "llama",
       .n_layer = 32,
       .n_embd = 4096,
       .n_head = 32,
       .n_head_kv = 8,
       .head_dim = 128,
       .n_ff = 14336,
       .n_vocab = 128256,
       .n_ctx_train = 131072},
      // 30.5B parameters in 128 experts, 8 used per token (3.3B active).
      {.name = "Qwen3-30B-A3B (MoE)",
       .architecture = "qwen3moe",
       .n_layer = 48,
       .n_embd = 2048,
       .n_head = 32,
       .n_head_kv = 4,
       .head_dim = 128,
       .n_ff = 6144,
       .n_vocab = 151936,
       .n_ctx_train = 40960,
       .n_expert = 128,
       .n_expert_used = 8,
       .n_ff_expert = 768},
  };
  return shapes;
}

std::vector<Scenario> sizing_scenarios() {
  std::vector<Scenario> out;
  out.push_back({.name = "text only",
                 .models = "Magistral Small 1.2 Q4_K_M",
                 .minimum = text_input("Magistral", "Q4_K_M", 1, 8192),
                 .recommended = text_input("Magistral", "Q4_K_M", 4, 32768)});
  out.push_back({.name = "text only",
                 .models = "Magistral Small 1.2 Q8_0",
                 .minimum = text_input("Magistral", "Q8_0", 1, 8192),
                 .recommended = text_input("Magistral", "Q8_0", 4, 32768)});
  out.push_back({.name = "mixed multimodal",
                 .models = "Magistral Small 1.2 Q8_0 + mmproj F16 + Whisper large-v3 F16",
                 .minimum = multimodal_input(1, 8192, 1),
                 .recommended = multimodal_input(4, 32768, 2)});
  out.push_back({.name = "text only",
                 .models = "Llama 3.1 8B Q4_K_M",
                 .minimum = text_input("Llama 3.1", "Q4_K_M", 1, 8192),
                 .recommended = text_input("Llama 3.1", "Q4_K_M", 8, 65536)});
  out.push_back({.name = "text only",
                 .models = "Qwen3-30B-A3B Q4_K_M",
                 .minimum = text_input("Qwen3", "Q4_K_M", 1, 8192),
                 .recommended = text_input("Qwen3", "Q4_K_M", 4, 32768)});
  return out;
}

}  // namespace mmserve::engine
