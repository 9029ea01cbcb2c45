// The built-in page's routes: each embedded file at its own exact path, the page also at "/".
#include "http/web_routes.h"

#include <string>

#include "core/error.h"

namespace mmserve::http {
namespace {

// Only this server's own origin: no CDN, no remote script, style, font or connection, and the
// page cannot be framed. data: and blob: images and media are the user's own files (previews,
// recordings), read in the browser.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'";

// If-None-Match names `etag` (or is "*"): the browser's copy is current.
bool matches(std::string_view if_none_match, std::string_view etag) {
  return !if_none_match.empty() &&
         (if_none_match == "*" || if_none_match.find(etag) != std::string_view::npos);
}

void serve(const WebAsset& asset, const ApiRequest& req, ApiResponse& res) {
  res.set_header("ETag", std::string(asset.etag));
  // Revalidate every time: the files change with the binary, and a 304 costs one round trip.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.content_type = std::string(asset.content_type);
  if (matches(req.header("If-None-Match"), asset.etag)) {
    res.status = 304;
    return;
  }
  res.body = std::string(asset.content);
}

const WebAsset* find_asset(std::string_view path) {
  for (const auto& asset : web_assets()) {
    if (asset.path == path) {
      return &asset;
    }
  }
  return nullptr;
}

}  // namespace

std::vector<Route> web_routes(const Services&) {
  std::vector<Route> routes;
  if (const WebAsset* page = find_asset("/ui/index.html")) {
    routes.push_back({"GET", "/", [page](const ApiRequest& req, ApiResponse& res, Exchange&) {
                        serve(*page, req, res);
                      }});
  }
  for (const auto& asset : web_assets()) {
    // The pattern is a regex: its '.' also matches other characters, so the path is checked.
    routes.push_back({"GET", std::string(asset.path),
                      [&asset](const ApiRequest& req, ApiResponse& res, Exchange&) {
                        if (req.path != asset.path) {
                          throw Error(ErrorCode::kNotFound,
                                      "no route GET " + std::string(req.path));
                        }
                        serve(asset, req, res);
                      }});
  }
  return routes;
}

}  // namespace mmserve::http
