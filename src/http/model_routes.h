// The model registry over HTTP: GET /v1/models and /v1/models/{name} (OpenAI's list and
// retrieve, from the registry, without file paths), and the admin endpoints POST /models/load
// and POST /models/unload with {"model": NAME} (llama-server's router-mode paths), and
// POST /models/register {"name", "path", "kind", ...} and /models/unregister {"model": NAME},
// which add and remove models while the server runs.
//
// Admin protection is the authentication stage's (stages/auth/api_key_stage.h): with API keys
// the admin endpoints need the admin key, and are refused (403) without one.
#pragma once

#include <vector>

#include "http/routes.h"

namespace mmserve::http {

std::vector<Route> model_routes(const Services& services);

}  // namespace mmserve::http
