// Reading a request's `lora` parameter: which of the model's LoRA adapters it runs with
// (runtime/lora_table.h resolves the references). Accepted shapes:
//   "lora": "name"                                   one adapter at its default scale
//   "lora": ["a", "b"]                               several
//   "lora": [{"name": "a", "scale": 0.5}, ...]       with scales
//   "lora": [{"id": 0, "scale": 0.5}, ...]           llama-server's: id is the index in the
//                                                    model's adapter list (GET /v1/models)
// An entry whose scale is 0 is dropped (llama-server's way of turning an adapter off).
// Stateless and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "engine/lora_adapter.h"
#include "http/json_fields.h"

namespace mmserve::http {

// Appends the references of obj["lora"] (absent or null: none) to `out`; `path` prefixes the
// fields of errors ("parameters"). Throws Error(kInvalidInput) naming the field.
void read_lora_param(const Json& obj, const std::string& path, std::vector<engine::LoraRef>& out);

}  // namespace mmserve::http
