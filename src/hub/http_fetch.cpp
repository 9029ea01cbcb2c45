// libcurl transfers for the Hub client (see http_fetch.h).
#include "hub/http_fetch.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>

#include "core/error.h"

#ifndef MMSERVE_VERSION
#define MMSERVE_VERSION "dev"
#endif

namespace mmserve::hub {
namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Hop {
  const FetchRequest* request = nullptr;
  FetchResponse* response = nullptr;
  CURL* curl = nullptr;
  bool deliver = false;  // set on the first body byte: a 2xx with a sink
  bool decided = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* hop = static_cast<Hop*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    hop->response->headers.clear();  // a new status line (after a 100 Continue)
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  std::ranges::transform(name, name.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t v = colon + 1;
  while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) ++v;
  hop->response->headers[name] = line.substr(v);
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* hop = static_cast<Hop*>(user);
  if (!hop->decided) {
    hop->decided = true;
    long status = 0;
    curl_easy_getinfo(hop->curl, CURLINFO_RESPONSE_CODE, &status);
    hop->response->status = status;
    hop->deliver = status >= 200 && status < 300 && hop->request->sink;
  }
  if (hop->deliver) {
    if (!hop->request->sink(std::string_view(data, size * n), *hop->response)) {
      hop->response->aborted = true;
      return 0;  // CURLE_WRITE_ERROR
    }
  } else if (hop->response->body.size() < (64u << 20)) {
    hop->response->body.append(data, size * n);
  }
  return size * n;
}

using CurlPtr = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using ListPtr = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

}  // namespace

std::string origin_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      out = std::string(scheme) + "://" + host + ":" + port;
      std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

std::string escape_path(const std::string& path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

FetchResponse fetch(const FetchRequest& request) {
  global_init();
  FetchResponse response;
  std::string url = request.url;
  for (int hop_index = 0;; ++hop_index) {
    CurlPtr curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) throw Error(ErrorCode::kInternal, "libcurl: cannot create a handle");
    ListPtr headers(nullptr, &curl_slist_free_all);
    auto add_header = [&](const std::string& h) {
      headers.reset(curl_slist_append(headers.release(), h.c_str()));
    };
    if (!request.token.empty() && origin_of(url) == request.token_origin) {
      add_header("Authorization: Bearer " + request.token);
    }
    std::string range;
    if (request.range_from) {
      range = std::to_string(*request.range_from) + "-" +
              (request.range_to ? std::to_string(*request.range_to) : "");
    }
    Hop hop{&request, &response, curl.get()};
    response.headers.clear();
    response.body.clear();
    response.url = url;
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // by hand: see the header comment
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mmserve/" MMSERVE_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, request.stall_seconds);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hop);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &hop);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    if (request.head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (!range.empty()) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);

    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    response.status = status;
    if (hop_index == 0) response.first_headers = response.headers;
    if (rc != CURLE_OK) {
      if (!response.aborted) {
        response.transport_error = errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc);
      }
      return response;
    }
    const bool redirect =
        status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    char* location = nullptr;
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    if (!redirect || location == nullptr) return response;
    if (hop_index >= request.max_redirects) {
      response.transport_error = "too many redirects (last to " + std::string(location) + ")";
      return response;
    }
    url = location;  // absolute: libcurl resolves a relative Location against `url`
  }
}

}  // namespace mmserve::hub
