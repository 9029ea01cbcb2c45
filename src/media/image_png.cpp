// PNG through libpng's simplified API: it reads the header first (dimensions for the limit
// check), then converts every PNG colour type and depth to 8-bit RGBA, which is composited over
// white as the other formats are. Damaged data (bad CRC, broken zlib stream, missing rows) fails
// the read.
#include <png.h>

#include <string>
#include <vector>

#include "media/image_codecs.h"

namespace mmserve::media::detail {
namespace {

struct PngImage {
  png_image image{};
  PngImage() { image.version = PNG_IMAGE_VERSION; }
  ~PngImage() { png_image_free(&image); }
};

std::string reason(const png_image& image) {
  std::string message = image.message;
  if (message.find("Read Error") != std::string::npos ||
      message.find("Not enough") != std::string::npos ||
      message.find("too short") != std::string::npos ||
      message.find("beyond end") != std::string::npos) {
    return "PNG data is truncated (" + message + ")";
  }
  return "corrupt PNG data (" + message + ")";
}

}  // namespace

Image decode_png(std::span<const uint8_t> bytes, const DimsCheck& check) {
  PngImage png;
  if (png_image_begin_read_from_memory(&png.image, bytes.data(), bytes.size()) == 0) {
    throw DecodeFailure(reason(png.image));
  }
  check(png.image.width, png.image.height);
  png.image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(png.image));
  if (png_image_finish_read(&png.image, nullptr, rgba.data(), 0, nullptr) == 0) {
    throw DecodeFailure(reason(png.image));
  }
  Image out;
  out.width = static_cast<int>(png.image.width);
  out.height = static_cast<int>(png.image.height);
  const size_t pixels = static_cast<size_t>(out.width) * out.height;
  out.rgb.resize(pixels * 3);
  rgba_over_white(rgba.data(), pixels, out.rgb.data());
  return out;
}

}  // namespace mmserve::media::detail
