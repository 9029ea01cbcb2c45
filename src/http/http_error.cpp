#include "http/http_error.h"

#include <nlohmann/json.hpp>

namespace mmserve::http {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidInput: return 400;
    case ErrorCode::kModelUnavailable: return 400;
    case ErrorCode::kUnauthorized: return 401;
    case ErrorCode::kForbidden: return 403;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kPayloadTooLarge: return 413;
    case ErrorCode::kBusy: return 429;
    case ErrorCode::kRateLimited: return 429;
    case ErrorCode::kCancelled: return 499;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kTimeout: return 504;
    case ErrorCode::kModelLoad: return 503;
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

std::string error_json(const Error& error, int status) {
  nlohmann::json body = {
      {"error",
       {{"message", error.what()},
        {"type", error_code_name(error.code())},
        {"param", error.field().empty() ? nlohmann::json(nullptr) : nlohmann::json(error.field())},
        {"code", status > 0 ? status : http_status(error.code())}}}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_error(ApiResponse& res, const Error& error) {
  res = ApiResponse{};  // whatever the handler had begun (a stream included) is dropped
  res.status = http_status(error.code());
  if (error.retry_after_seconds() > 0) {
    res.set_header("Retry-After", std::to_string(error.retry_after_seconds()));
  } else if (error.code() == ErrorCode::kBusy || error.code() == ErrorCode::kRateLimited) {
    res.set_header("Retry-After", "1");
  }
  res.content_type = "application/json";
  res.body = error_json(error);
}

void write_internal_error(ApiResponse& res, const std::exception& e) {
  write_error(res, Error(ErrorCode::kInternal, std::string("internal error: ") + e.what()));
}

}  // namespace mmserve::http
