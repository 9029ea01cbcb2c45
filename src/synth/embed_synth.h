// Synthetic embedding models for tests and benchmarks: GGUF files of llama.cpp's "bert"
// architecture (token, token-type and position embeddings, post-norm encoder layers with
// biases, GELU feed-forward) with a generated WordPiece vocabulary ([PAD] [UNK] [CLS] [SEP]
// [MASK], letters, digits, punctuation and common English words, each as a word start "▁x"
// and a continuation "x"), so any text tokenizes. Random weights from a fixed seed; the
// vectors carry no meaning, but their shapes, pooling and speed are a real model's.
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace mmserve::synth {

struct EmbedShape {
  int32_t n_vocab = 1024;
  int32_t n_embd = 128;
  int32_t n_layer = 2;
  int32_t n_head = 4;
  int32_t n_ff = 512;
  int32_t n_ctx = 512;  // training context: position embeddings; longer inputs are refused
};

// "tiny" (tests), "minilm-l6" (all-MiniLM-L6-v2's shape), "bge-base" (bge-base-en-v1.5's).
// Throws Error(kInvalidInput, "preset").
EmbedShape embed_preset(const std::string& name);

struct EmbedSynthOptions {
  EmbedShape shape;
  std::string pooling = "mean";  // "mean" or "cls": what the file tells libllama to do
  std::string type = "f16";      // f16 or f32
  uint64_t seed = 1234;
};

struct EmbedSynthReport {
  uint64_t parameters = 0;
  uint64_t file_bytes = 0;
};

// Writes the model to `path`. Throws Error(kInvalidInput, field) for a bad shape, pooling or
// type, Error(kInternal) when the file cannot be written.
EmbedSynthReport write_synthetic_embedding_model(const std::string& path,
                                                 const EmbedSynthOptions& options);

}  // namespace mmserve::synth
