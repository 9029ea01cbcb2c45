// Decoding untrusted image bytes (JPEG, PNG, BMP, GIF first frame, WebP) into 8-bit RGB.
//
// Limits are checked from the header, before any pixel is decoded, so a small file that claims
// a huge picture (a decompression bomb) is refused without allocating for it. Every failure is
// Error(kInvalidInput) naming the request field and the problem ("truncated", "corrupt",
// "unsupported ..."), which the HTTP edge answers with 400. Transparent pixels are composited
// over white, as viewers show them.
//
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mmserve::media {

enum class ImageFormat { kUnknown, kJpeg, kPng, kBmp, kGif, kWebp };
const char* image_format_name(ImageFormat format);

struct ImageLimits {
  size_t max_bytes = 20u << 20;     // encoded size
  int64_t max_pixels = 50'000'000;  // width x height (of the canvas and of every frame read)
};

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3 bytes, rows top to bottom
};

// The format from the leading magic bytes; kUnknown when none matches.
ImageFormat sniff_image_format(std::span<const uint8_t> bytes);

// Decodes `bytes`; `field` names the request field in errors (e.g. "input").
Image decode_image(std::span<const uint8_t> bytes, const ImageLimits& limits,
                   const std::string& field);

// Reads and decodes a file (the CLI); a missing or unreadable file is
// Error(kNotFound/kInvalidInput).
Image load_image_file(const std::string& path, const ImageLimits& limits);

}  // namespace mmserve::media
