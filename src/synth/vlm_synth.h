// Synthetic vision-language models: a GGUF language model and a matching mmproj GGUF, of
// configurable size, with random weights from a fixed seed, in one of two families:
//  - gemma3: Gemma 3's architecture and projector (a SigLIP vision tower, average pooling, RMS
//    norm and a linear projection), as the real Gemma 3 4B/12B/27B files;
//  - magistral: Magistral Small 1.2's shape (as Mistral Small 3.1/3.2): a "llama" language model
//    with the caller's chat template and Mistral's special tokens ([INST], [IMG_BREAK], ...),
//    and a Pixtral projector (a 2D-RoPE vision tower with RMS norms and SiLU gated FFNs, the
//    spatial patch merger, a GELU MLP, and [IMG_BREAK] embeddings between rows of image tokens;
//    dynamic resolution: the token count follows the picture's size). The vocabulary is the
//    generated SentencePiece one, not Mistral's Tekken BPE: prompts tokenize differently, the
//    chat format and the image path are the real ones.
// They load through llama.cpp and libmtmd exactly as the real files do, so the whole image path
// (decode, preprocess, encode, embed, generate) runs where no real VLM can be had. Outputs are
// gibberish by construction; what is deterministic is the files (same options, same bytes) and so
// the model's greedy output. Control tokens get zero logits, so generation never ends early and
// always runs to max_tokens.
//
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::synth {

enum class VlmFamily { kGemma3, kMagistral };

// "gemma3" or "magistral"; throws Error(kInvalidInput, "family") for anything else.
VlmFamily vlm_family(const std::string& name);

// The special tokens Magistral Small 1.2's template and libmtmd's Pixtral path write, added to
// the magistral family's vocabulary as control tokens.
const std::vector<std::string>& magistral_special_tokens();

struct VlmShape {
  // Language model (Gemma 3, or "llama" for magistral).
  int32_t n_embd = 256;
  int32_t n_layer = 4;
  int32_t n_head = 4;
  int32_t n_head_kv = 2;
  int32_t head_dim = 64;
  int32_t n_ff = 1024;
  int32_t n_ctx = 4096;
  int32_t sliding_window = 0;  // > 0: Gemma 3's interleaved local attention of that window
  // Vision tower (SigLIP / Pixtral) and projector.
  int32_t image_size = 448;  // Gemma 3: 896; Pixtral: the nominal side (images keep theirs)
  int32_t patch_size = 14;
  int32_t pool = 2;      // patches merged per side per image token; Gemma 3: 4, Magistral: 2
  int32_t v_embd = 192;  // Gemma 3: 1152
  int32_t v_layer = 4;   // Gemma 3: 27
  int32_t v_head = 4;    // Gemma 3: 16
  int32_t v_ff = 768;    // Gemma 3: 4304
};

struct VlmSynthOptions {
  VlmFamily family = VlmFamily::kGemma3;
  VlmShape shape;
  // The language model's Jinja chat template: required for magistral (the caller reads it from
  // the model's own file, e.g. llama.cpp's models/templates); for gemma3 empty means the built-in
  // Gemma-style one.
  std::string chat_template;
  uint64_t seed = 42;
  std::string model_path;   // the language model GGUF to write
  std::string mmproj_path;  // the projector GGUF to write
};

// Image tokens for an image_size x image_size picture: with side = image_size / patch_size /
// pool, side^2 for gemma3, side^2 + side - 1 for magistral (an [IMG_BREAK] after each row but
// the last).
int32_t vlm_tokens_per_image(const VlmShape& shape, VlmFamily family = VlmFamily::kGemma3);

// Checks the shape, then writes both files. Throws Error(kInvalidInput, field) for a shape
// libmtmd or llama.cpp would reject, Error(kInternal) when a file cannot be written.
void write_synthetic_vlm(const VlmSynthOptions& options);

}  // namespace mmserve::synth
