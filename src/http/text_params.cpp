#include "http/text_params.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace mmserve::http {

void read_generation_params(const Json& obj, const std::string& path, engine::GenerationRequest& r,
                            std::initializer_list<const char*> max_tokens_keys) {
  auto& s = r.sampling;
  r.max_tokens = 0;  // "not given" until a key below says otherwise
  if (auto v = opt_number(obj, "temperature", path)) s.temperature = static_cast<float>(*v);
  if (auto v = opt_number(obj, "top_p", path)) s.top_p = static_cast<float>(*v);
  if (auto v = opt_number(obj, "min_p", path)) s.min_p = static_cast<float>(*v);
  if (auto v = opt_number(obj, "repeat_penalty", path)) s.repeat_penalty = static_cast<float>(*v);
  if (auto v = opt_integer(obj, "top_k", path)) {
    if (*v < 0 || *v > std::numeric_limits<int32_t>::max()) {
      throw Error(ErrorCode::kInvalidInput, "top_k must be >= 0", join_path(path, "top_k"));
    }
    s.top_k = static_cast<int32_t>(*v);
  }
  if (auto v = opt_integer(obj, "seed", path)) {
    // Any integer is accepted (OpenAI clients send 64-bit seeds); it is folded to 32 bits.
    s.seed = static_cast<uint32_t>(static_cast<uint64_t>(*v) % 0xFFFFFFFFULL);
  }
  r.stop = opt_string_list(obj, "stop", path);
  // Benchmarks (and llama-server users) ask for a fixed length regardless of end-of-sequence.
  r.ignore_eos = opt_bool(obj, "ignore_eos", path).value_or(false);
  for (const char* key : max_tokens_keys) {
    if (auto v = opt_integer(obj, key, path)) {
      if (*v < 1 || *v > 1'000'000) {
        throw Error(
            ErrorCode::kInvalidInput,
            std::string(key) + " must be between 1 and the context size, got " + std::to_string(*v),
            join_path(path, key));
      }
      r.max_tokens = static_cast<int32_t>(*v);
      break;
    }
  }
  try {
    engine::validate(s);
  } catch (const Error& e) {
    throw Error(e.code(), e.what(), join_path(path, e.field().c_str()));
  }
}

}  // namespace mmserve::http
