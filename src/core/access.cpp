#include "core/access.h"

#include <algorithm>

namespace mmserve {

std::string comma_joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) {
      out.push_back(',');
    }
    out += item;
  }
  return out;
}

bool endpoint_allowed(const std::vector<std::string>& patterns, std::string_view path) {
  if (patterns.empty()) {
    return true;
  }
  return std::any_of(patterns.begin(), patterns.end(), [path](const std::string& p) {
    if (!p.empty() && p.back() == '*') {
      return path.starts_with(std::string_view(p).substr(0, p.size() - 1));
    }
    return path == p;
  });
}

bool listed_or_open(const std::vector<std::string>& allowed, std::string_view value) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

}  // namespace mmserve
