#include "http/text_params.h"

#include <cstdlib>

#include "core/error.h"
#include "http/lora_request.h"
#include "pipeline/generation_params.h"

namespace mmserve::http {

void read_generation_params(const Json& obj, const std::string& path, engine::GenerationRequest& r,
                            std::initializer_list<const char*> max_tokens_keys) {
  // Types here; ranges and defaults in pipeline/generation_params.h, shared with the SDK.
  pipeline::GenerationParams p;
  p.temperature = opt_number(obj, "temperature", path);
  p.top_p = opt_number(obj, "top_p", path);
  p.min_p = opt_number(obj, "min_p", path);
  p.repeat_penalty = opt_number(obj, "repeat_penalty", path);
  p.top_k = opt_integer(obj, "top_k", path);
  p.seed = opt_integer(obj, "seed", path);
  p.stop = opt_string_list(obj, "stop", path);
  p.ignore_eos = opt_bool(obj, "ignore_eos", path).value_or(false);
  if (const Json* bias = opt_object(obj, "logit_bias", path)) {
    // OpenAI's form: {"<token id>": bias}.
    const std::string field = join_path(path, "logit_bias");
    for (const auto& [key, value] : bias->items()) {
      char* end = nullptr;
      const long long id = std::strtoll(key.c_str(), &end, 10);
      if (key.empty() || end == nullptr || *end != '\0' || !value.is_number()) {
        throw Error(ErrorCode::kInvalidInput,
                    "field '" + field + "' maps token ids (\"123\") to numbers", field);
      }
      p.logit_bias.emplace_back(id, value.get<double>());
    }
  }
  p.cache_prompt = opt_bool(obj, "cache_prompt", path).value_or(true);
  for (const char* key : max_tokens_keys) {
    if (auto v = opt_integer(obj, key, path)) {
      p.max_tokens = v;
      p.max_tokens_key = key;
      break;
    }
  }
  pipeline::apply_generation_params(p, path, r);
  read_lora_param(obj, path, r.lora_refs);  // LoRA adapters by name (http/lora_request.h)
}

}  // namespace mmserve::http
