// Reads a GGUF file's header and tensor table without loading weights: validation with one
// clear message per failure (missing, unreadable, not GGUF, corrupt, truncated) and the facts
// `mmserve info` prints. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::engine {

struct TensorTypeStats {
  std::string type;  // ggml type name, e.g. "f32", "q8_0"
  int64_t tensors = 0;
  uint64_t bytes = 0;
};

// A multimodal projector ("mmproj" GGUF, general.architecture "clip"), from its header.
struct ProjectorSummary {
  std::string type;  // clip.projector_type (or clip.vision.projector_type), e.g. "gemma3"
  bool has_vision = false;
  bool has_audio = false;
  int64_t image_size = -1, patch_size = -1, scale_factor = -1;
  int64_t n_embd = -1, n_layer = -1, n_head = -1, projection_dim = -1;
  // Embeddings one image becomes, when the projector type fixes it (-1: depends on the image).
  int64_t tokens_per_image = -1;
};

struct GgufSummary {
  std::string path;
  uint64_t file_bytes = 0;
  uint32_t gguf_version = 0;
  std::string architecture;  // general.architecture, e.g. "llama"
  std::string name;          // general.name, may be empty
  std::string file_type;     // from general.file_type, e.g. "F32", "Q8_0"; empty if absent
  int64_t n_tensors = 0;
  uint64_t n_params = 0;
  uint64_t tensor_bytes = 0;  // what the weights need in memory
  std::vector<TensorTypeStats> tensor_types;
  // Hyperparameters under "<arch>.*"; -1 when the file does not say.
  int64_t n_layer = -1, n_embd = -1, n_head = -1, n_head_kv = -1, n_ctx_train = -1;
  int64_t n_expert = -1, n_expert_used = -1;
  int64_t n_vocab = -1;
  bool has_chat_template = false;
  ProjectorSummary projector;  // filled when architecture == "clip"

  bool is_moe() const { return n_expert > 1; }
};

// Throws Error(kNotFound) when the file is missing, Error(kModelLoad) when it cannot be read,
// is not GGUF, has a corrupt header or is shorter than its tensor table says.
GgufSummary inspect_gguf(const std::string& path);

}  // namespace mmserve::engine
