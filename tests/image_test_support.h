// Test images made in the test, not committed: small pictures of known pixels, encoded with the
// same Debian codec libraries the decoder uses (plus a hand-written BMP writer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "media/image_decoder.h"

namespace mmserve::testing {

using Bytes = std::vector<uint8_t>;

// width x height in four flat quadrants: red, green, blue, white (top-left, top-right, ...).
media::Image quadrants(int width, int height);

Bytes encode_png(const media::Image& image);
// RGBA PNG: every pixel is (r, g, b, alpha).
Bytes encode_png_rgba(int width, int height, uint8_t r, uint8_t g, uint8_t b, uint8_t alpha);
Bytes encode_jpeg(const media::Image& image, int quality = 95);
Bytes encode_bmp(const media::Image& image, int bits_per_pixel = 24, bool top_down = false);
// A GIF with one frame per image (colours must fit a 256-entry palette); `transparent` is a
// palette index or -1, and applies to every frame.
Bytes encode_gif(const std::vector<media::Image>& frames, int transparent_rgb = -1);
Bytes encode_webp_lossless(const media::Image& image);
// An animated WebP with one frame per image.
Bytes encode_webp_animated(const std::vector<media::Image>& frames);

// The first `n` bytes.
Bytes truncated(const Bytes& bytes, size_t n);

}  // namespace mmserve::testing
