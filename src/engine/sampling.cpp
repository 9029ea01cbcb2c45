#include "engine/sampling.h"

#include <llama.h>

#include <cmath>
#include <random>

#include "core/error.h"

namespace mmserve::engine {
namespace {

void require(bool ok, const char* field, const std::string& what) {
  if (!ok) throw Error(ErrorCode::kInvalidInput, std::string(field) + " " + what, field);
}

}  // namespace

void validate(const SamplingParams& p) {
  require(std::isfinite(p.temperature) && p.temperature >= 0 && p.temperature <= 100, "temperature",
          "must be between 0 and 100");
  require(p.top_k >= 0, "top_k", "must be >= 0");
  require(std::isfinite(p.top_p) && p.top_p > 0 && p.top_p <= 1, "top_p", "must be in (0, 1]");
  require(std::isfinite(p.min_p) && p.min_p >= 0 && p.min_p <= 1, "min_p", "must be in [0, 1]");
  require(std::isfinite(p.repeat_penalty) && p.repeat_penalty > 0 && p.repeat_penalty <= 10,
          "repeat_penalty", "must be in (0, 10]");
  require(p.repeat_last_n >= 0, "repeat_last_n", "must be >= 0");
  for (const auto& [token, bias] : p.logit_bias) {
    require(token >= 0, "logit_bias", "keys must be token ids (integers >= 0)");
    require(std::isfinite(bias) && bias >= -100 && bias <= 100, "logit_bias",
            "values must be between -100 and 100");
  }
}

void SamplerDeleter::operator()(llama_sampler* sampler) const {
  llama_sampler_free(sampler);
}

SamplerPtr make_sampler(const SamplingParams& p, int32_t n_vocab) {
  auto chain_params = llama_sampler_chain_default_params();
  chain_params.no_perf = true;
  SamplerPtr chain(llama_sampler_chain_init(chain_params));
  if (!p.logit_bias.empty()) {
    std::vector<llama_logit_bias> biases;
    for (const auto& [token, bias] : p.logit_bias) biases.push_back({token, bias});
    llama_sampler_chain_add(
        chain.get(),
        llama_sampler_init_logit_bias(n_vocab, static_cast<int32_t>(biases.size()), biases.data()));
  }
  if (p.repeat_penalty != 1.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(n_vocab, p.repeat_last_n,
                                                                      p.repeat_penalty, 0, 0));
  }
  if (p.temperature <= 0) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
    return chain;
  }
  uint32_t seed = p.seed;
  if (seed == LLAMA_DEFAULT_SEED) seed = std::random_device{}();
  if (p.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(p.top_k));
  if (p.top_p < 1) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(p.top_p, 1));
  if (p.min_p > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(p.min_p, 1));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(p.temperature));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(seed));
  return chain;
}

SamplerPtr make_grammar_sampler(const llama_vocab* vocab, const GrammarConstraint& g) {
  llama_sampler* sampler = nullptr;
  if (g.lazy) {
    std::vector<const char*> patterns;
    patterns.reserve(g.trigger_patterns.size());
    for (const auto& p : g.trigger_patterns) patterns.push_back(p.c_str());
    sampler = llama_sampler_init_grammar_lazy_patterns(
        vocab, g.gbnf.c_str(), "root", patterns.data(), patterns.size(), g.trigger_tokens.data(),
        g.trigger_tokens.size());
  } else {
    sampler = llama_sampler_init_grammar(vocab, g.gbnf.c_str(), "root");
  }
  if (sampler == nullptr) {
    throw Error(ErrorCode::kInvalidInput, "the output grammar does not compile", "grammar");
  }
  SamplerPtr out(sampler);
  try {
    for (const Token t : g.prefill) llama_sampler_accept(out.get(), t);
  } catch (const std::exception& e) {  // libllama throws when the grammar refuses a token
    throw Error(ErrorCode::kInternal,
                std::string("the output grammar refuses the answer's opening: ") + e.what());
  }
  return out;
}

}  // namespace mmserve::engine
