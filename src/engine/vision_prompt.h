// Images inside a prompt. A multimodal prompt is still one token vector: each image occupies a
// run of kMediaToken placeholders, one per embedding it will produce, so that lengths, KV
// reservations and usage counts work unchanged; `media` says which run is which image.
//
// Ownership: a MediaChunk owns libmtmd's preprocessed image (resized, normalised pixels) and is
// immutable, so requests holding it may be copied and shared across threads.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

struct mtmd_input_chunk;

namespace mmserve::engine {

using Token = int32_t;

// Placeholder token for a prompt position filled by an image embedding. Never a real token id.
inline constexpr Token kMediaToken = -1;

class MediaChunk {
 public:
  // Takes ownership of `chunk` (an image chunk from mtmd_tokenize, copied out of its list).
  explicit MediaChunk(mtmd_input_chunk* chunk);
  ~MediaChunk();
  MediaChunk(const MediaChunk&) = delete;
  MediaChunk& operator=(const MediaChunk&) = delete;

  const mtmd_input_chunk* raw() const { return chunk_; }
  int32_t n_tokens() const;  // embeddings, i.e. KV cells
  int32_t n_pos() const;     // positions advanced (differs from n_tokens for M-RoPE models)

 private:
  mtmd_input_chunk* chunk_;
};

struct PromptMedia {
  size_t begin = 0;  // first prompt index covered; the run is chunk->n_tokens() long
  std::shared_ptr<const MediaChunk> chunk;
};

}  // namespace mmserve::engine
