// The generation parameters of a call as the client gave them, and the one place their rules
// live: the HTTP edge reads them from JSON (http/text_params.h), the Python SDK from keyword
// arguments, and both apply them here, so the same value gets the same check and message.
// Pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/text_batch.h"

namespace mmserve::pipeline {

// Absent fields take the engine's defaults (engine/sampling.h).
struct GenerationParams {
  std::optional<double> temperature, top_p, min_p, repeat_penalty;
  std::optional<int64_t> top_k;
  std::optional<int64_t> seed;  // any integer; folded to 32 bits (OpenAI clients send 64-bit)
  std::vector<std::string> stop;
  std::vector<std::pair<int64_t, double>> logit_bias;  // token id -> bias (OpenAI's)
  bool ignore_eos = false;                             // benchmarks: always produce max_tokens
  bool cache_prompt = true;  // llama-server's: false decodes the whole prompt (no prefix reuse)
  std::optional<int64_t> max_tokens;
  std::string max_tokens_key = "max_tokens";  // its name in the client's API, for errors
};

// Most stop strings one request may give.
inline constexpr size_t kMaxStopStrings = 16;
// Most logit_bias entries one request may give.
inline constexpr size_t kMaxLogitBias = 1024;

// Checks `params` and writes them into `request` (sampling, stop, ignore_eos; max_tokens 0
// when not given: the executor then applies its default). Error(kInvalidInput) names the field
// under `path` ("parameters.top_k").
void apply_generation_params(const GenerationParams& params, const std::string& path,
                             engine::GenerationRequest& request);

// `parent`.`key`, or `key` when `parent` is empty.
std::string field_path(const std::string& parent, const std::string& key);

}  // namespace mmserve::pipeline
