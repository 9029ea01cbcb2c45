#include "http/exchange.h"

#include <algorithm>
#include <cctype>

namespace mmserve::http {

std::string_view ApiRequest::header(std::string_view name) const {
  const auto same = [](std::string_view a, std::string_view b) {
    return std::ranges::equal(
        a, b, [](unsigned char x, unsigned char y) { return std::tolower(x) == std::tolower(y); });
  };
  for (const auto& [key, value] : headers) {
    if (same(key, name)) {
      return value;
    }
  }
  return {};
}

std::optional<std::string_view> ApiRequest::query_param(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

void ApiResponse::set_header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
}

}  // namespace mmserve::http
