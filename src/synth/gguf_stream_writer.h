// Writes a GGUF file whose tensors are too large to hold in memory at once: the header and
// tensor table first (from metadata-only tensors), then each tensor's data streamed in the
// same order with GGUF's alignment padding. Data is produced by a callback per tensor.
//
// Not thread-safe: one writer per file, used by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct ggml_context;
struct ggml_tensor;
struct gguf_context;

namespace mmserve::synth {

class GgufStreamWriter {
 public:
  // Fills `out` (ggml_nbytes of the tensor) with the tensor's data.
  using Fill = std::function<void(const ggml_tensor& tensor, uint8_t* out)>;

  explicit GgufStreamWriter(size_t max_tensors);
  ~GgufStreamWriter();
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  // Key-value metadata goes here (gguf_set_val_*).
  gguf_context* kv() { return gguf_; }
  // Declares a tensor; ne[0] is the fastest-varying (input) dimension, as in ggml.
  void add(const std::string& name, int type, std::vector<int64_t> ne, Fill fill);
  // Writes the file (atomically: to a temporary name, then renamed). Throws Error(kInternal).
  void write(const std::string& path);

 private:
  ggml_context* meta_ = nullptr;
  gguf_context* gguf_ = nullptr;
  std::vector<std::pair<ggml_tensor*, Fill>> tensors_;
};

// Deterministic pseudo-random numbers (xorshift64*), the same on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  // Uniform in [-1, 1).
  float uniform() {
    return static_cast<float>(static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0);
  }

 private:
  uint64_t state_;
};

// A fill of uniform random values scaled by `scale` (F32 or F16 tensors), seeded per tensor.
GgufStreamWriter::Fill random_fill(uint64_t seed, float scale);
// A fill of a constant (F32 or F16 tensors).
GgufStreamWriter::Fill constant_fill(float value);

}  // namespace mmserve::synth
