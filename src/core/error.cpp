#include "core/error.h"

namespace mmserve {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidInput: return "invalid_request_error";
    case ErrorCode::kUnauthorized: return "authentication_error";
    case ErrorCode::kForbidden: return "permission_error";
    case ErrorCode::kNotFound: return "not_found_error";
    case ErrorCode::kPayloadTooLarge: return "payload_too_large";
    case ErrorCode::kModelUnavailable: return "model_not_loaded";
    case ErrorCode::kBusy: return "server_busy";
    case ErrorCode::kRateLimited: return "rate_limit_exceeded";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kModelLoad: return "model_load_error";
    case ErrorCode::kInternal: return "internal_error";
  }
  return "internal_error";
}

}  // namespace mmserve
