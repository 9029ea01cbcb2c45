// The first stage: who is calling. On a server with an API key (serve --api-key) every call
// must present it ("Authorization: Bearer <key>"); the admin endpoints need the admin key
// (--admin-key), and are refused (403) on a server with keys but no admin key. The admin key
// also opens every other endpoint. A server without keys (a developer's loopback) leaves
// everything open, admin endpoints included, and calls its callers "anonymous".
//
// Keys are compared in constant time. Threading: immutable after construction; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "pipeline/stage.h"

namespace mmserve::stages {

struct ApiKeys {
  std::string api_key;    // empty: no keys, everything open
  std::string admin_key;  // with api_key: what the admin endpoints need
};

class ApiKeyStage : public pipeline::Stage {
 public:
  explicit ApiKeyStage(ApiKeys keys) : keys_(std::move(keys)) {}
  std::string_view name() const override { return "auth"; }
  // Sets Call::caller, or throws Error(kUnauthorized) for a missing or wrong key and
  // Error(kForbidden) for the admin endpoints on a server without an admin key.
  void on_admit(pipeline::Call& call) const override;

 private:
  ApiKeys keys_;
};

// Equal strings, in time that depends on their lengths only (no early exit on a mismatch).
bool same_secret(std::string_view a, std::string_view b);

}  // namespace mmserve::stages
