// The model registry over HTTP: GET /v1/models and /v1/models/{name} (OpenAI's list and
// retrieve, from the registry, without file paths), and the admin endpoints POST /models/load
// and POST /models/unload with {"model": NAME} (llama-server's router-mode paths).
//
// Admin protection: when the server has API keys (--api-key), the admin endpoints need
// "Authorization: Bearer ADMIN_KEY" (--admin-key); with keys but no admin key they are refused
// (403). A server without keys (a developer's loopback) leaves them open like every endpoint.
#pragma once

#include <httplib.h>

#include <string>

#include "runtime/runtime.h"

namespace mmserve::http {

struct AdminAccess {
  std::string api_key;    // empty: no keys, admin endpoints open
  std::string admin_key;  // empty with an api_key: admin endpoints refused
};

void register_model_routes(httplib::Server& server, runtime::Runtime& runtime, AdminAccess access);

}  // namespace mmserve::http
