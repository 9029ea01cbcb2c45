// One HTTP request with Debian's libcurl, following redirects by hand so that the Hub token
// (`Authorization: Bearer`) goes only to the Hub endpoint's origin (scheme, host, port) and
// never to the host a redirect names (the CDN). Proxies come from libcurl itself: http_proxy,
// https_proxy, all_proxy and no_proxy (lowercase; HTTPS_PROXY/ALL_PROXY/NO_PROXY too).
// Thread-safe: each call has its own curl handle.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mmserve::hub {

struct FetchResponse {
  long status = 0;                                   // of the last hop
  std::string url;                                   // of the last hop
  std::map<std::string, std::string> headers;        // last hop, names lowercase
  std::map<std::string, std::string> first_headers;  // first hop (the Hub's own answer)
  std::string body;             // when no sink took it, or the body of an error status
  std::string transport_error;  // non-empty when the transfer failed (cut, timeout, refused)
  bool aborted = false;         // the sink returned false
};

struct FetchRequest {
  std::string url;
  bool head = false;
  std::optional<uint64_t> range_from;  // "Range: bytes=FROM-[TO]"
  std::optional<uint64_t> range_to;    // inclusive
  // Receives a 2xx body as it arrives (after the headers of that response); false aborts.
  std::function<bool(std::string_view chunk, const FetchResponse& response)> sink;
  std::string token;         // sent only to `token_origin`
  std::string token_origin;  // "scheme://host:port" of the Hub endpoint
  long stall_seconds = 30;   // abort when under 1 byte/s for this long
  int max_redirects = 10;
};

FetchResponse fetch(const FetchRequest& request);

// "scheme://host:port" of a URL, lowercase, default port filled in; empty when unparsable.
std::string origin_of(const std::string& url);
// A path segment %-escaped for a URL ("a b.gguf" -> "a%20b.gguf"); '/' kept.
std::string escape_path(const std::string& path);

}  // namespace mmserve::hub
