// Synthetic vision-language models: a GGUF language model of Gemma 3's architecture and a
// matching mmproj GGUF with Gemma 3's projector (a SigLIP vision tower, average pooling, RMS norm
// and a linear projection), of configurable size, with random weights from a fixed seed. They
// load through llama.cpp and libmtmd exactly as the real Gemma 3 4B/12B/27B files do, so the
// whole image path (decode, preprocess, encode, embed, generate) runs where no real VLM can be
// had. Outputs are gibberish by construction; what is deterministic is the files (same options,
// same bytes) and so the model's greedy output. Control tokens get zero logits, so generation
// never ends early and always runs to max_tokens.
//
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace mmserve::synth {

struct VlmShape {
  // Language model (Gemma 3 architecture).
  int32_t n_embd = 256;
  int32_t n_layer = 4;
  int32_t n_head = 4;
  int32_t n_head_kv = 2;
  int32_t head_dim = 64;
  int32_t n_ff = 1024;
  int32_t n_ctx = 4096;
  int32_t sliding_window = 0;  // > 0: Gemma 3's interleaved local attention of that window
  // Vision tower (SigLIP) and Gemma 3 projector.
  int32_t image_size = 448;  // Gemma 3: 896
  int32_t patch_size = 14;
  int32_t pool = 2;      // patches pooled per side per image token; Gemma 3: 4
  int32_t v_embd = 192;  // Gemma 3: 1152
  int32_t v_layer = 4;   // Gemma 3: 27
  int32_t v_head = 4;    // Gemma 3: 16
  int32_t v_ff = 768;    // Gemma 3: 4304
};

struct VlmSynthOptions {
  VlmShape shape;
  uint64_t seed = 42;
  std::string model_path;   // the language model GGUF to write
  std::string mmproj_path;  // the projector GGUF to write
};

// Image tokens per image for a shape: (image_size / patch_size / pool)^2.
int32_t vlm_tokens_per_image(const VlmShape& shape);

// Checks the shape, then writes both files. Throws Error(kInvalidInput, field) for a shape
// libmtmd or llama.cpp would reject, Error(kInternal) when a file cannot be written.
void write_synthetic_vlm(const VlmSynthOptions& options);

}  // namespace mmserve::synth
