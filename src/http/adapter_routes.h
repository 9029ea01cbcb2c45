// LoRA adapters over HTTP (runtime/lora_table.h): the admin endpoints
//   POST /models/adapters/load   {"model": BASE, "name": NAME, "path": FILE, "scale": S}
//   POST /models/adapters/unload {"model": BASE, "name": NAME}
// (the admin key, like /models/load: stages/auth), and what GET /v1/models shows of them: each
// adapter as an entry of its own, id "BASE:NAME" (what a request's "model" may say), and the
// list under its base's meta.adapters (index = llama-server's {"id": N}). Paths: absolute, or
// relative to the model directory; the file must be a LoRA GGUF of that model.
#pragma once

#include <vector>

#include "http/json_fields.h"
#include "http/routes.h"

namespace mmserve::http {

std::vector<Route> adapter_routes(const Services& services);

// GET /v1/models: appends the adapter entries of the loaded text model `status` to `data`, and
// sets `model_entry`'s meta.adapters. Nothing for other models or one not loaded.
void add_adapter_entries(const runtime::ModelStatus& status, Json& model_entry, Json& data);

}  // namespace mmserve::http
