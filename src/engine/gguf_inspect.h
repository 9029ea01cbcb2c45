// Reads a GGUF file's header and tensor table without loading weights: validation with one
// clear message per failure (missing, unreadable, not GGUF, corrupt, truncated) and the facts
// `mmserve info` and `mmserve plan` use. One parser serves a local file and a header-only prefix
// of a remote one (read by HTTP range requests). Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
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
  int64_t n_ff = -1;  // clip.vision.feed_forward_length
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
  // Where the weight bytes are, for a GPU split: the repeating layers' tensors ("blk.N.*") by
  // N, the token embeddings, the output head ("output.*"), and the rest (norms, rope tables).
  std::vector<uint64_t> layer_bytes;
  uint64_t token_embd_bytes = 0;
  uint64_t output_bytes = 0;
  uint64_t other_bytes = 0;
  // Hyperparameters under "<arch>.*"; -1 when the file does not say.
  int64_t n_layer = -1, n_embd = -1, n_head = -1, n_head_kv = -1, n_ctx_train = -1;
  int64_t n_expert = -1, n_expert_used = -1;
  int64_t n_vocab = -1;
  int64_t n_ff = -1;                         // feed_forward_length (first layer's)
  int64_t n_ff_expert = -1;                  // expert_feed_forward_length
  int64_t head_dim_k = -1, head_dim_v = -1;  // attention.key_length / value_length
  int64_t sliding_window = -1;               // attention.sliding_window
  int64_t pooling_type = -1;                 // embedding models: llama_pooling_type
  bool has_chat_template = false;
  ProjectorSummary projector;  // filled when architecture == "clip"

  uint64_t n_expert_params = 0;  // in the routed experts' tensors ("*_exps.*")
  uint64_t expert_bytes = 0;

  bool is_moe() const { return n_expert > 1; }
  // Parameters one token runs through: all but the routed experts it is not routed to.
  uint64_t n_active_params() const {
    if (!is_moe() || n_expert_used <= 0 || n_expert_used >= n_expert) { return n_params;
}
    return n_params - n_expert_params +
           n_expert_params / static_cast<uint64_t>(n_expert) * static_cast<uint64_t>(n_expert_used);
  }
  // Per-head widths: the file's key_length/value_length, else n_embd / n_head.
  int64_t head_k() const;
  int64_t head_v() const;
};

// Throws Error(kNotFound) when the file is missing, Error(kModelLoad) when it cannot be read,
// is not GGUF, has a corrupt header or is shorter than its tensor table says.
GgufSummary inspect_gguf(const std::string& path);

// How many leading bytes of a GGUF file hold its whole header (metadata and tensor table):
// returns 0 when `prefix` already holds it, else a total length to read before asking again
// (a lower bound: a longer header is only discovered as it is read). Throws Error(kModelLoad)
// when the prefix is not GGUF or is corrupt. `name` is what messages call the file.
uint64_t gguf_header_bytes_needed(std::string_view prefix, const std::string& name);

// inspect_gguf for a header-only prefix of a file of `file_bytes` bytes (a remote file read by
// range): the same summary, with `name` as its path. Throws Error(kModelLoad) when the prefix
// is not GGUF, corrupt, too short (the message says how many bytes the header needs) or the
// tensors end past `file_bytes`.
GgufSummary inspect_gguf_header(std::string_view prefix, uint64_t file_bytes,
                                const std::string& name);

}  // namespace mmserve::engine
