#include "stages/auth/api_key_stage.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/model_spec.h"

namespace mmserve::stages {

bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

namespace {

constexpr const char* kSendKey = "send Authorization: Bearer <key>";

std::string refusal_message(store::KeyRefusal refusal) {
  switch (refusal) {
    case store::KeyRefusal::kRevoked: return "this API key was revoked";
    case store::KeyRefusal::kUnknown:
    case store::KeyRefusal::kWrongSecret: return "unknown or wrong API key";
    case store::KeyRefusal::kMalformed:
    case store::KeyRefusal::kNone: break;
  }
  return std::string("missing or wrong API key: ") + kSendKey;
}

}  // namespace

pipeline::Caller ApiKeyStage::identify(const pipeline::Call& call) const {
  const std::string& token = call.credentials.bearer;
  pipeline::Caller caller;
  if (keys_.database != nullptr && token.starts_with(store::kKeyPrefix)) {
    store::KeyRefusal refusal = store::KeyRefusal::kNone;
    const auto key = keys_.database->verify(token, &refusal);
    if (!key) {
      throw Error(ErrorCode::kUnauthorized, refusal_message(refusal));
    }
    caller.id = key->id;
    caller.name = key->name;
    caller.admin = key->scopes.admin;
    caller.scopes = key->scopes;
    caller.limits = key->limits;
  } else {
    // Both compared, whatever the first gave, so that the time says nothing of which matched.
    const bool is_admin = !keys_.admin_key.empty() && same_secret(token, keys_.admin_key);
    const bool is_user = !keys_.api_key.empty() && same_secret(token, keys_.api_key);
    if (!is_admin && !is_user) {
      throw Error(ErrorCode::kUnauthorized, std::string("missing or wrong API key: ") + kSendKey);
    }
    caller.id = is_admin ? "admin" : "api-key";
    caller.admin = is_admin;
  }
  caller.authenticated = true;
  return caller;
}

void ApiKeyStage::on_admit(pipeline::Call& call) const {
  if (!keys_.any()) {
    call.caller = {.id = "anonymous", .authenticated = false, .admin = true};
    return;
  }
  call.caller = identify(call);
  call.annotate(name(), "caller", call.caller.id);
  const auto& caller = call.caller;
  switch (call.operation) {
    case pipeline::Operation::kManageModels:
      if (!caller.admin) {
        throw Error(ErrorCode::kForbidden,
                    "the admin endpoints need an admin key (--admin-key, or a key created with "
                    "`mmserve keys create NAME --admin`)");
      }
      return;
    case pipeline::Operation::kReadMetrics:
      if (!caller.admin && !(caller.scopes.endpoints.size() > 0 &&
                             endpoint_allowed(caller.scopes.endpoints, "/metrics"))) {
        throw Error(ErrorCode::kForbidden,
                    "/metrics needs an admin key or a key whose endpoints include /metrics");
      }
      return;
    case pipeline::Operation::kInference:
    case pipeline::Operation::kReadModels:
    case pipeline::Operation::kReadUsage:
      if (!caller.admin && !endpoint_allowed(caller.scopes.endpoints, call.endpoint)) {
        throw Error(ErrorCode::kForbidden, "this API key may not use " + call.endpoint);
      }
      return;
  }
}

void ApiKeyStage::on_request(pipeline::Call& call) const {
  if (call.operation != pipeline::Operation::kInference) {
    return;
  }
  const auto& scopes = call.caller.scopes;
  if (!listed_or_open(scopes.tasks, runtime::task_name(call.task))) {
    throw Error(ErrorCode::kForbidden,
                std::string("this API key may not use the task ") + runtime::task_name(call.task),
                "task");
  }
  if (scopes.models.empty() || listed_or_open(scopes.models, call.model)) {
    return;
  }
  const std::string resolved = model_name_ ? model_name_(call) : std::string();
  if (resolved.empty() || !listed_or_open(scopes.models, resolved)) {
    const std::string named = call.model.empty() ? resolved : call.model;
    throw Error(ErrorCode::kForbidden, "this API key may not use the model '" + named + "'",
                "model");
  }
}

}  // namespace mmserve::stages
