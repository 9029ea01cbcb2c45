// The per-format decoders behind decode_image (internal to src/media).
//
// Each reads the picture's dimensions from the header first and hands them to `check`, which
// throws to refuse (limits); only then are pixels decoded. A decoder reports bad data by throwing
// DecodeFailure with a short reason ("JPEG data is truncated"); decode_image adds the field.
// Stateless and thread-safe (the libraries are used through per-call state only).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>

#include "media/image_decoder.h"

namespace mmserve::media::detail {

struct DecodeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using DimsCheck = std::function<void(int64_t width, int64_t height)>;

Image decode_jpeg(std::span<const uint8_t> bytes, const DimsCheck& check);
Image decode_png(std::span<const uint8_t> bytes, const DimsCheck& check);
Image decode_bmp(std::span<const uint8_t> bytes, const DimsCheck& check);
Image decode_gif(std::span<const uint8_t> bytes, const DimsCheck& check);
Image decode_webp(std::span<const uint8_t> bytes, const DimsCheck& check);

// Writes `pixels` RGBA pixels as RGB composited over white.
void rgba_over_white(const uint8_t* rgba, size_t pixels, uint8_t* rgb);

}  // namespace mmserve::media::detail
