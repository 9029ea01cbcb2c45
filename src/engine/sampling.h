// Sampling parameters of one generation request, their validation, and the llama.cpp sampler
// chain built from them. Validation lives here so the CLI and every HTTP endpoint reject the
// same values with the same message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/chat_format.h"

struct llama_sampler;
struct llama_vocab;

namespace mmserve::engine {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0 means greedy (argmax)
  int32_t top_k = 40;           // <= 0 disables
  float top_p = 0.95f;          // 1 disables
  float min_p = 0.05f;          // 0 disables
  float repeat_penalty = 1.0f;  // 1 disables
  int32_t repeat_last_n = 64;
  uint32_t seed = 0xFFFFFFFF;  // 0xFFFFFFFF picks a random seed per request
  // OpenAI's logit_bias: added to these tokens' logits before anything else (-100 bans one,
  // +100 all but forces it).
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// Throws Error(kInvalidInput) naming the field when a value is out of range.
void validate(const SamplingParams& params);

struct SamplerDeleter {
  void operator()(llama_sampler* sampler) const;
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// Builds penalties -> top-k -> top-p -> min-p -> temperature -> dist, or greedy at temperature 0.
SamplerPtr make_sampler(const SamplingParams& params, int32_t n_vocab);

// libllama's grammar sampler for `grammar` (lazy with its triggers), advanced over its prefill.
// It is applied before the chain and never sees the prompt, so it is kept apart from it.
// Throws Error(kInvalidInput, "grammar") when libllama cannot compile it.
SamplerPtr make_grammar_sampler(const llama_vocab* vocab, const GrammarConstraint& grammar);

}  // namespace mmserve::engine
