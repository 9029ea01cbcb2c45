// `mmserve quantize` for GGUF models: llama.cpp's own quantizer (llama_model_quantize) driven
// with a TYPE name from the set llama.cpp's tools/quantize accepts, an optional importance
// matrix (llama.cpp's GGUF imatrix format or its older binary one), per-tensor type overrides
// and per-tensor progress. Also the progress and result types whisper_quantize.h shares.
//
// Thread-safety: quantize_gguf may be called from any thread; calls are serialized inside
// (llama.cpp's logger, which carries the progress, is process-wide). While one runs, llama.cpp
// log lines from other threads still reach the previous logger.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mmserve::engine {

// One tensor written: index counts from 1 to total.
struct QuantizeProgress {
  int index = 0;
  int total = 0;
  std::string tensor;  // e.g. "blk.1.attn_q.weight"
  std::string type;    // the ggml type it was written as, e.g. "q8_0"
};
using QuantizeProgressFn = std::function<void(const QuantizeProgress&)>;

// What a finished quantization wrote.
struct QuantizeResult {
  std::string type;                  // canonical TYPE name, e.g. "Q4_K_M"
  uint64_t parameters = 0;           // weights (elements) in the model
  uint64_t weights_bytes = 0;        // bytes of tensor data in the output
  uint64_t input_weights_bytes = 0;  // and in the input
  int tensors = 0;
  int quantized_tensors = 0;  // tensors whose type changed
};

struct GgufQuantizeOptions {
  std::string type;                       // TYPE name, case-insensitive ("q4_k_m", "Q8_0", "F16")
  int threads = 0;                        // 0: llama.cpp's default (all cores)
  std::string imatrix_path;               // empty: none
  std::vector<std::string> tensor_types;  // "PATTERN=TYPE": regex on the tensor name = ggml type
  bool allow_requantize = false;          // accept already-quantized input tensors
  bool pure = false;                      // every tensor the default type (no k-quant mixture)
  bool leave_output_tensor = false;       // keep output.weight as it is
  QuantizeProgressFn progress;            // called once per tensor, on the calling thread
};

// The TYPE names quantize_gguf accepts, in llama.cpp's order, with a short description each.
struct GgufTypeInfo {
  const char* name;
  const char* description;
};
const std::vector<GgufTypeInfo>& gguf_quantize_types();

// Validates options (TYPE, overrides, imatrix file) without touching the model: throws
// Error(kInvalidInput) naming the field ("type", "--tensor-type", "--imatrix"), or
// Error(kNotFound / kModelLoad) for a missing or unreadable imatrix file.
void validate_gguf_quantize_options(const GgufQuantizeOptions& options);

// Quantizes GGUF `input` into `output` (written in place: the caller picks a temporary name).
// Throws Error(kInvalidInput) for bad options, Error(kModelLoad) when the input is not a
// quantizable model or llama.cpp fails (the message carries llama.cpp's own reason).
QuantizeResult quantize_gguf(const std::string& input, const std::string& output,
                             const GgufQuantizeOptions& options);

}  // namespace mmserve::engine
