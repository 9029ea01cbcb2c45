// The first stage: who is calling, and whether its key may do what it asks.
//
// Keys come from two places: the database (serve --db; `mmserve keys create`), each with its
// scopes and quotas, and the static keys of --api-key (full access, no quotas) and --admin-key
// (also the admin endpoints). A server with neither (a developer's loopback) leaves everything
// open, admin endpoints included, and calls its callers "anonymous". A server with a database
// requires a key even while the database holds none.
//
//   on_admit: the key (401 in OpenAI's shape when missing, unknown, wrong or revoked); the
//     endpoint against its scope (403); the admin endpoints need an admin key (403 for a valid
//     key without it); a protected /metrics needs an admin key or one listing "/metrics".
//   on_request: the task and the model against its scopes (403 naming the field).
//
// A database key is looked up on every request, so `mmserve keys revoke` in another process
// takes effect at the next one. Static keys are compared in constant time; database keys by
// their SHA-256 (store/key_store.h).
//
// Threading: immutable after construction; thread-safe. Borrows the KeyStore.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "pipeline/stage.h"
#include "store/key_store.h"

namespace mmserve::stages {

struct ApiKeys {
  std::string api_key;    // --api-key: one static key
  std::string admin_key;  // --admin-key: the static admin key (with --api-key or --db)
  const store::KeyStore* database = nullptr;  // serve --db; null: none
  // Whether any key protects the server: without one, everything is open.
  bool any() const { return !api_key.empty() || database != nullptr; }
};

// The registry's name of the model a call would run on ("" when unknown): a key's model scope
// allows a model by its name or by the alias the call used.
using ModelNamer = std::function<std::string(const pipeline::Call&)>;

class ApiKeyStage : public pipeline::Stage {
 public:
  explicit ApiKeyStage(ApiKeys keys, ModelNamer model_name = {})
      : keys_(std::move(keys)), model_name_(std::move(model_name)) {}
  std::string_view name() const override { return "auth"; }
  // Sets Call::caller, or throws Error(kUnauthorized) / Error(kForbidden).
  void on_admit(pipeline::Call& call) const override;
  // Error(kForbidden, "task" / "model") outside the key's scopes.
  void on_request(pipeline::Call& call) const override;

 private:
  pipeline::Caller identify(const pipeline::Call& call) const;

  ApiKeys keys_;
  ModelNamer model_name_;
};

// Equal strings, in time that depends on their lengths only (no early exit on a mismatch).
bool same_secret(std::string_view a, std::string_view b);

}  // namespace mmserve::stages
