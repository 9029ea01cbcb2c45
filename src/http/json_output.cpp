#include "http/json_output.h"

namespace mmserve::http {

std::string to_json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_json(httplib::Response& res, const nlohmann::json& body) {
  res.set_content(to_json_text(body), "application/json");
}

}  // namespace mmserve::http
