// GET / and GET /ui/*: the built-in web page (web/ in the source tree: chat, describe,
// transcribe, status). Its files are compiled into the binary at build time
// (cmake/EmbedAssets.cmake writes them as byte arrays into web_assets.cpp in the build
// directory), so a server on an air-gapped network serves the whole page itself and nothing
// is fetched from anywhere at run time.
//
// The page holds no data: its routes are public (no key), like /health. Everything it shows
// comes from the API calls it makes, which carry the key the user typed into the page (kept in
// the browser's localStorage only). Each answer carries an ETag (the file's SHA-256) for
// revalidation and a Content-Security-Policy that allows this server's own origin only.
// Immutable after static initialisation; thread-safe.
#pragma once

#include <string_view>
#include <vector>

#include "http/routes.h"

namespace mmserve::http {

// One embedded file.
struct WebAsset {
  std::string_view path;          // the URL path it is served at ("/ui/app.js")
  std::string_view content_type;  // with charset for text
  std::string_view etag;          // quoted strong validator: the content's SHA-256
  std::string_view content;
};

// Every embedded file (web_assets.cpp, generated); "/ui/index.html" is the page.
const std::vector<WebAsset>& web_assets();

// The routes: "/" (the page) and one exact route per embedded file.
std::vector<Route> web_routes(const Services& services);

}  // namespace mmserve::http
