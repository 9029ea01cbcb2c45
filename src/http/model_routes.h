// The model registry over HTTP: GET /v1/models and /v1/models/{name} (OpenAI's list and
// retrieve, from the registry, without file paths), and the admin endpoints POST /models/load
// and POST /models/unload with {"model": NAME} (llama-server's router-mode paths), and
// POST /models/register {"name", "path", "kind", ...} and /models/unregister {"model": NAME},
// which add and remove models while the server runs.
//
// Admin protection is the authentication stage's (stages/auth/api_key_stage.h): with API keys
// the admin endpoints need the admin key, and are refused (403) without one.
#pragma once

#include <string>
#include <vector>

#include "http/routes.h"

namespace mmserve::http {

std::vector<Route> model_routes(const Services& services);

// A model or adapter file named by an admin request: absolute, or relative to the model
// directory (where `mmserve pull` puts models), and a readable regular file now; else
// Error(kInvalidInput) naming `field`.
std::string readable_model_file(const std::string& value, const std::string& field);

}  // namespace mmserve::http
