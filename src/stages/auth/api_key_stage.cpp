#include "stages/auth/api_key_stage.h"

#include <algorithm>

#include "core/error.h"

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

void ApiKeyStage::on_admit(pipeline::Call& call) const {
  const bool admin_endpoint = call.operation == pipeline::Operation::kManageModels;
  if (keys_.api_key.empty()) {
    call.caller = {.id = "anonymous", .authenticated = false, .admin = true};
    return;
  }
  const std::string& token = call.credentials.bearer;
  const bool is_admin = !keys_.admin_key.empty() && same_secret(token, keys_.admin_key);
  const bool is_user = same_secret(token, keys_.api_key);
  if (admin_endpoint) {
    if (keys_.admin_key.empty()) {
      throw Error(ErrorCode::kForbidden,
                  "the admin endpoints are off on a server with API keys and no admin key "
                  "(start it with --admin-key or $MMSERVE_ADMIN_KEY)");
    }
    if (!is_admin) {
      throw Error(ErrorCode::kUnauthorized,
                  "missing or wrong admin key: send Authorization: Bearer <admin key>");
    }
  } else if (!is_user && !is_admin) {
    throw Error(ErrorCode::kUnauthorized,
                "missing or wrong API key: send Authorization: Bearer <key>");
  }
  call.caller = {.id = is_admin ? "admin" : "api-key", .authenticated = true, .admin = is_admin};
  call.annotate(name(), "caller", call.caller.id);
}

}  // namespace mmserve::stages
