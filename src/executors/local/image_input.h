// Image inputs of HTTP requests, turned into decoded pictures: base64 text and data URLs in
// JSON, uploaded files (multipart/form-data), and http(s) URLs.
//
// Server-side request forgery: a URL is fetched only when its host is on the configured allow
// list (serve --allow-image-hosts); by default every remote URL is refused, so a client cannot
// make the server reach into the network it sits in. Redirects are not followed.
//
// Every failure is Error(kInvalidInput) naming the field (HTTP 400). Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "media/image_decoder.h"
#include "runtime/runtime.h"

namespace mmserve::executors {

struct ImageInputPolicy {
  media::ImageLimits limits;
  std::vector<std::string> allowed_hosts;  // "host" or "host:port", compared without case
  int fetch_timeout_seconds = 10;
};

// The policy `mmserve serve` was started with (--max-image-bytes, --max-image-pixels,
// --allow-image-hosts).
ImageInputPolicy image_policy(const runtime::RuntimeOptions& options);

// Decodes standard or URL-safe base64 (whitespace ignored, padding optional).
std::vector<uint8_t> decode_base64(std::string_view text, const std::string& field);

// A JSON string holding an image: a data URL ("data:image/png;base64,..."), an http(s) URL, or
// bare base64.
media::Image image_from_string(std::string_view value, const ImageInputPolicy& policy,
                               const std::string& field);

// Raw image bytes (an uploaded file).
media::Image image_from_bytes(std::string_view bytes, const ImageInputPolicy& policy,
                              const std::string& field);

}  // namespace mmserve::executors
