// Reading generation parameters from request JSON, shared by /v1/inference and the
// OpenAI-compatible endpoints so that the same field gets the same checks everywhere.
#pragma once

#include <optional>
#include <string>

#include "engine/text_batch.h"
#include "http/json_fields.h"

namespace mmserve::http {

// Reads temperature, top_p, top_k, min_p, repeat_penalty, seed, stop, ignore_eos and max_tokens (or
// the first present of `max_tokens_keys`) from `obj`; `path` prefixes field names in errors. Leaves
// request.max_tokens at 0 when absent (the scheduler then applies its default, see
// TextScheduler::default_max_tokens).
void read_generation_params(const Json& obj, const std::string& path,
                            engine::GenerationRequest& request,
                            std::initializer_list<const char*> max_tokens_keys = {"max_tokens"});

}  // namespace mmserve::http
