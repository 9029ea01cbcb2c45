// `mmserve quantize` for whisper.cpp models: reads whisper.cpp's ggml .bin format (magic
// 0x67676d6c, hyperparameters with the file type, mel filters, vocabulary, then tensors) and
// writes it again with the weight matrices quantized by ggml (ggml_quantize_chunk), the tensors
// whisper.cpp's own quantizer quantizes: every 2-D tensor except the positional embeddings and
// the convolution biases. The input is untrusted: every length and size is checked against the
// file before anything is written, and a bad file is one Error, never a crash.
//
// Thread-safety: stateless; concurrent calls on different files are safe. Each call uses up
// to `threads` worker threads of its own.
#pragma once

#include <string>
#include <vector>

#include "engine/gguf_quantize.h"

namespace mmserve::engine {

struct WhisperQuantizeOptions {
  std::string type;  // Q8_0, Q5_0, Q5_1, Q4_0, Q4_1, Q2_K ... Q6_K (case-insensitive)
  int threads = 0;   // 0: all cores
  QuantizeProgressFn progress;
};

// True when the file starts with whisper.cpp's ggml magic (0x67676d6c, little-endian).
bool is_whisper_ggml_file(const std::string& path);

// The TYPE names quantize_whisper accepts.
const std::vector<GgufTypeInfo>& whisper_quantize_types();

// Throws Error(kInvalidInput, field "type") for a TYPE quantize_whisper does not write.
void validate_whisper_quantize_type(const std::string& type);

// Quantizes whisper.cpp model `input` into `output` (written in place: the caller picks a
// temporary name). Throws Error(kNotFound) for a missing input, Error(kModelLoad) for a file
// that is not a float whisper.cpp model or is truncated or corrupt (nothing useful is written
// then: the whole input is checked first), Error(kInvalidInput) for a TYPE whose block size does
// not divide the model's rows, Error(kInternal) when the output cannot be written.
QuantizeResult quantize_whisper(const std::string& input, const std::string& output,
                                const WhisperQuantizeOptions& options);

}  // namespace mmserve::engine
