// The typed embedding requests, parsed and validated from the body alone (before any model is
// involved), as api_requests.h does for the other endpoints: POST /v1/embeddings in OpenAI's
// shape, and task "embed" of POST /v1/inference. Every failure is Error(kInvalidInput) naming
// the field by its full path ("input[3]", "parameters.dimensions"); fields the server does not
// implement are refused. Pure and thread-safe.
//
// `input`: a string, an array of strings, an array of token ids (one input) or an array of
// arrays of token ids; at most kMaxEmbeddingInputs inputs, none empty (as OpenAI). The model
// checks lengths and token ids. `encoding_format`: "float" (default) or "base64" (the vector's
// little-endian float32 bytes, as OpenAI). `dimensions`: a positive integer; the model checks it
// against its length.
#pragma once

#include <string>

#include "http/json_fields.h"
#include "pipeline/call.h"

namespace mmserve::http {

inline constexpr size_t kMaxEmbeddingInputs = 2048;  // OpenAI's limit

struct EmbeddingRequest {
  std::string model;  // name or alias; "" = the default embedding model
  pipeline::EmbedInput input;
  bool base64 = false;
  pipeline::DataClass data_class = pipeline::DataClass::kUnspecified;  // /v1/inference only
};

// /v1/embeddings: input, model, encoding_format, dimensions, user (metadata, ignored).
EmbeddingRequest parse_embeddings_request(const Json& body);
// /v1/inference {"task": "embed", "input", "model", "parameters": {"dimensions",
// "encoding_format", "data_class"}}; "stream" must be absent or false.
EmbeddingRequest parse_embed_inference_request(const Json& body);

}  // namespace mmserve::http
