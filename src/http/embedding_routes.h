// Embeddings over HTTP: POST /v1/embeddings (OpenAI's shape) and the "embed" task of
// POST /v1/inference, both run by the pipeline on an embedding model (local only: the cloud
// executor does not embed, and the privacy router keeps every task but text-gen local).
// Stateless and thread-safe.
#pragma once

#include "http/json_fields.h"
#include "http/routes.h"

namespace mmserve::http {

// task "embed" of /v1/inference, from its parsed JSON body. Answers {"id", "task", "model",
// "route", "output": [[...], ...] (one vector per input, or base64 strings), "dimensions",
// "usage": {"prompt_tokens"}, "timings": {"queue_ms", "embed_ms"}}.
void answer_embed_inference(const Services& services, Exchange& exchange, ApiResponse& res,
                            const Json& body);

}  // namespace mmserve::http
