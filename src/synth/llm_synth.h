// Synthetic language models for benchmarks and tests: GGUF files of llama.cpp's "llama"
// architecture with the shapes of real models (Llama 3.2 1B, a small mixture-of-experts),
// random weights from a fixed seed, F32/F16 or quantized (Q8_0, Q4_K_M) with llama.cpp's own
// quantizer. Speed depends on shapes and types, not on weight values, so these measure what
// the real models would. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::synth {

struct LlmShape {
  int32_t n_vocab = 32000;
  int32_t n_embd = 256;
  int32_t n_layer = 4;
  int32_t n_head = 8;
  int32_t n_head_kv = 4;
  int32_t n_ff = 768;  // per expert for a mixture-of-experts model
  int32_t n_ctx = 4096;
  int32_t n_expert = 0;  // 0: dense
  int32_t n_expert_used = 0;
  bool tied_embeddings = true;  // no separate output matrix (as Llama 3.2 1B)
};

// "tiny" (tests), "llama-3.2-1b", "moe-small" (8 experts, 2 used). Throws Error(kInvalidInput).
LlmShape llm_preset(const std::string& name);

struct LlmSynthOptions {
  LlmShape shape;
  // A model family's chat format: its Jinja template (tokenizer.chat_template; none when
  // empty) and the special tokens it writes ("[THINK]", "<tool_call>", ...), added to the
  // vocabulary as control tokens so that prompts and answers hold them as single tokens.
  std::string chat_template;
  std::vector<std::string> special_tokens;
  std::string type = "f16";  // f32, f16, q8_0, q4_k_m
  uint64_t seed = 1234;
  int threads = 0;  // quantizer threads; 0 = all cores
};

struct LlmSynthReport {
  uint64_t parameters = 0;
  uint64_t file_bytes = 0;
  // The ids of LlmSynthOptions::special_tokens, in their order (for logit_bias in tests).
  std::vector<int32_t> special_token_ids;
};

// Writes the model to `path`. Throws Error(kInvalidInput, field) for a bad shape or type,
// Error(kInternal) when the file cannot be written or quantized.
LlmSynthReport write_synthetic_llm(const std::string& path, const LlmSynthOptions& options);

}  // namespace mmserve::synth
