#include "executors/cloud/cloud_options.h"

#include "core/error.h"

namespace mmserve::executors {

Endpoint parse_endpoint(const std::string& base_url) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidInput,
                 "the cloud base URL '" + base_url + "' " + why +
                     " (expected http(s)://host[:port][/path], e.g. https://api.openai.com/v1)");
  };
  const auto scheme_end = base_url.find("://");
  if (scheme_end == std::string::npos) {
    throw bad("has no scheme");
  }
  const auto scheme = base_url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw bad("is neither http nor https");
  }
  const auto host_begin = scheme_end + 3;
  const auto path_begin = base_url.find('/', host_begin);
  Endpoint e;
  e.origin = base_url.substr(0, path_begin);
  if (e.origin.size() == host_begin) {
    throw bad("has no host");
  }
  if (e.origin.find_first_of("?#@ ", host_begin) != std::string::npos) {
    throw bad("has a query, credentials or spaces in its host part");
  }
  if (path_begin != std::string::npos) {
    e.path_prefix = base_url.substr(path_begin);
    while (!e.path_prefix.empty() && e.path_prefix.back() == '/') {
      e.path_prefix.pop_back();
    }
  }
  return e;
}

}  // namespace mmserve::executors
