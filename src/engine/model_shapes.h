// Published shapes of models the product serves (from their model cards and configs, not
// measured here) and the sizing scenarios `mmserve plan --scenarios` and docs/sizing.md show:
// each shape becomes a header-like GgufSummary at a quantization, so the one estimator
// (memory_plan.h) sizes it as it would the real file. Constant data; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/gguf_inspect.h"
#include "engine/memory_plan.h"
#include "engine/speech_model.h"

namespace mmserve::engine {

struct PublishedShape {
  std::string name;  // "Magistral Small 1.2 (24B)"
  std::string architecture;
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  int64_t n_vocab = 0, n_ctx_train = 0;
  int64_t n_expert = 0, n_expert_used = 0, n_ff_expert = 0;  // mixture of experts
  bool tied_embeddings = false;
};

// Bits per weight of a llama.cpp quantization: "F16" 16, "Q8_0" 8.5, "Q4_K_M" 4.85 (its mix
// of Q4_K and Q6_K). Throws Error(kInvalidInput) for another name.
double bits_per_weight(const std::string& quant);

// A summary of `shape` quantized as `quant` (the output head at Q6_K for Q4_K_M, as
// llama-quantize does), with its per-layer bytes.
GgufSummary summary_from_shape(const PublishedShape& shape, const std::string& quant);

struct Scenario {
  std::string name;       // "text only", "mixed multimodal"
  std::string models;     // what it serves, in words
  PlanInput minimum;      // fits: parallel 1, a small context
  PlanInput recommended;  // parallel 4, 32K context; sized with 20% headroom
};

const std::vector<PublishedShape>& published_shapes();
std::vector<Scenario> sizing_scenarios();
constexpr double kRecommendedHeadroom = 1.2;

}  // namespace mmserve::engine
