#include "http/json_output.h"

namespace mmserve::http {

std::string to_json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_json(ApiResponse& res, const nlohmann::json& body) {
  res.content_type = "application/json";
  res.body = to_json_text(body);
}

}  // namespace mmserve::http
