#include "pipeline/generation_params.h"

#include <limits>

#include "core/error.h"

namespace mmserve::pipeline {

std::string field_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

void apply_generation_params(const GenerationParams& p, const std::string& path,
                             engine::GenerationRequest& r) {
  auto& s = r.sampling;
  if (p.temperature) {
    s.temperature = static_cast<float>(*p.temperature);
  }
  if (p.top_p) {
    s.top_p = static_cast<float>(*p.top_p);
  }
  if (p.min_p) {
    s.min_p = static_cast<float>(*p.min_p);
  }
  if (p.repeat_penalty) {
    s.repeat_penalty = static_cast<float>(*p.repeat_penalty);
  }
  if (p.top_k) {
    if (*p.top_k < 0 || *p.top_k > std::numeric_limits<int32_t>::max()) {
      throw Error(ErrorCode::kInvalidInput, "top_k must be >= 0", field_path(path, "top_k"));
    }
    s.top_k = static_cast<int32_t>(*p.top_k);
  }
  if (p.seed) {
    s.seed = static_cast<uint32_t>(static_cast<uint64_t>(*p.seed) % 0xFFFFFFFFULL);
  }
  if (p.stop.size() > kMaxStopStrings) {
    throw Error(ErrorCode::kInvalidInput,
                "stop allows at most " + std::to_string(kMaxStopStrings) + " entries",
                field_path(path, "stop"));
  }
  r.stop = p.stop;
  if (p.logit_bias.size() > kMaxLogitBias) {
    throw Error(ErrorCode::kInvalidInput,
                "logit_bias allows at most " + std::to_string(kMaxLogitBias) + " entries",
                field_path(path, "logit_bias"));
  }
  s.logit_bias.clear();
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < 0 || token > std::numeric_limits<int32_t>::max()) {
      throw Error(ErrorCode::kInvalidInput, "logit_bias keys must be token ids",
                  field_path(path, "logit_bias"));
    }
    s.logit_bias.emplace_back(static_cast<int32_t>(token), static_cast<float>(bias));
  }
  r.ignore_eos = p.ignore_eos;
  r.reuse_prefix = p.cache_prompt;
  r.max_tokens = 0;  // "not given"
  if (p.max_tokens) {
    if (*p.max_tokens < 1 || *p.max_tokens > 1'000'000) {
      throw Error(ErrorCode::kInvalidInput,
                  p.max_tokens_key + " must be between 1 and the context size, got " +
                      std::to_string(*p.max_tokens),
                  field_path(path, p.max_tokens_key));
    }
    r.max_tokens = static_cast<int32_t>(*p.max_tokens);
  }
  try {
    engine::validate(s);
  } catch (const Error& e) {
    throw Error(e.code(), e.what(), field_path(path, e.field()));
  }
}

}  // namespace mmserve::pipeline
