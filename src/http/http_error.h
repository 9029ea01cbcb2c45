// The edge where typed errors become HTTP: status codes and the OpenAI error JSON shape
// {"error": {"message", "type", "param", "code"}}, used by every endpoint. Thread-safe.
#pragma once

#include <exception>
#include <string>

#include "core/error.h"
#include "http/exchange.h"

namespace mmserve::http {

int http_status(ErrorCode code);

// Writes the error as JSON with its status (and Retry-After for kBusy).
void write_error(ApiResponse& res, const Error& error);
// For anything that is not an mmserve::Error: 500 without internals beyond what().
void write_internal_error(ApiResponse& res, const std::exception& e);

// The JSON text of an error body (also used inside SSE streams); "code" is the HTTP status,
// http_status(error.code()) unless `status` is given (errors cpp-httplib found itself: 414...).
std::string error_json(const Error& error, int status = 0);

}  // namespace mmserve::http
