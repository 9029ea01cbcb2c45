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
// request.max_tokens at 0 when absent (see resolve_max_tokens).
void read_generation_params(const Json& obj, const std::string& path,
                            engine::GenerationRequest& request,
                            std::initializer_list<const char*> max_tokens_keys = {"max_tokens"});

// Absent max_tokens means "up to the sequence's capacity" (what llama-server and OpenAI do),
// or `fallback` when it is given (the legacy completions endpoint defaults to 16).
void resolve_max_tokens(engine::GenerationRequest& request, int32_t sequence_capacity,
                        std::optional<int32_t> fallback = std::nullopt);

}  // namespace mmserve::http
