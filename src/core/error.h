// Typed errors carried from where they happen to the edge (CLI exit code, HTTP status).
//
// Policy: code inside mmserve throws mmserve::Error for every failure a user can cause or must
// act on (bad input, missing model, busy server). Each carries a category, the offending field
// when there is one, and a one-line message meant for the user. Edges translate the category:
// the CLI prints the message and exits non-zero; the HTTP layer maps it to a status code and a
// JSON body. Anything else that escapes (std::bad_alloc, logic errors) is an internal error.
#pragma once

#include <stdexcept>
#include <string>

namespace mmserve {

enum class ErrorCode {
  kInvalidInput,      // the request or argument is malformed or out of range (HTTP 400)
  kUnauthorized,      // missing or wrong API key (HTTP 401)
  kForbidden,         // a valid key that may not do this (HTTP 403)
  kNotFound,          // a named resource (model file, route) does not exist (HTTP 404)
  kPayloadTooLarge,   // input over a configured size limit (HTTP 413)
  kModelUnavailable,  // the task needs a model that is not loaded (HTTP 400 with a hint)
  kBusy,              // queue full: retry later (HTTP 429)
  kRateLimited,       // the caller's key is over one of its quotas (HTTP 429)
  kUnavailable,       // not ready, or shutting down (HTTP 503)
  kTimeout,           // deadline exceeded (HTTP 504)
  kCancelled,         // the client went away
  kModelLoad,         // the model file is unreadable, not GGUF, truncated or unsupported
  kInternal,          // a bug or an engine failure (HTTP 500)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, std::string field = {})
      : std::runtime_error(std::move(message)), code_(code), field_(std::move(field)) {}

  ErrorCode code() const noexcept { return code_; }
  // The request field or CLI option the error is about; empty when it is about no one field.
  const std::string& field() const noexcept { return field_; }
  // Seconds after which retrying may succeed (kBusy, kRateLimited); 0: not said.
  int retry_after_seconds() const noexcept { return retry_after_seconds_; }
  Error& with_retry_after(int seconds) noexcept {
    retry_after_seconds_ = seconds;
    return *this;
  }

 private:
  ErrorCode code_;
  std::string field_;
  int retry_after_seconds_ = 0;
};

// Stable lowercase name of a code, used in JSON error bodies and logs.
const char* error_code_name(ErrorCode code) noexcept;

}  // namespace mmserve
