// JSON leaving the server: the one serializer every response, SSE event and error body goes
// through. It replaces text that is not valid UTF-8 instead of throwing (the engines only emit
// valid text, see core/utf8.h, but a bug there must give a U+FFFD, never a crashed stream).
// Stateless and thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "http/exchange.h"

namespace mmserve::http {

std::string to_json_text(const nlohmann::json& value);

// Sets `body` as the response's application/json content.
void write_json(ApiResponse& res, const nlohmann::json& body);

}  // namespace mmserve::http
