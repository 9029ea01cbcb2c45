// BMP: the header is parsed here (dimensions for the limit check, and the size the pixel rows
// need, because stb_image reads past the end of a truncated BMP as zeros instead of failing);
// the pixels are then decoded by stb_image (Debian's libstb).
#include <stb/stb_image.h>

#include <cstring>
#include <memory>
#include <string>

#include "media/image_codecs.h"

namespace mmserve::media::detail {
namespace {

uint32_t u32(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint32_t>(b[at]) | static_cast<uint32_t>(b[at + 1]) << 8 |
         static_cast<uint32_t>(b[at + 2]) << 16 | static_cast<uint32_t>(b[at + 3]) << 24;
}

uint16_t u16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] | b[at + 1] << 8);
}

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

}  // namespace

Image decode_bmp(std::span<const uint8_t> bytes, const DimsCheck& check) {
  if (bytes.size() < 26) throw DecodeFailure("BMP data is truncated (incomplete header)");
  const uint32_t data_offset = u32(bytes, 10);
  const uint32_t info_size = u32(bytes, 14);
  int64_t width = 0, height = 0;
  uint32_t bpp = 0, compression = 0;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER
    width = u16(bytes, 18);
    height = u16(bytes, 20);
    bpp = u16(bytes, 24);
  } else if (info_size >= 40 && info_size <= 124) {
    if (bytes.size() < 14 + 40) throw DecodeFailure("BMP data is truncated (incomplete header)");
    width = static_cast<int32_t>(u32(bytes, 18));
    height = static_cast<int32_t>(u32(bytes, 22));
    bpp = u16(bytes, 28);
    compression = u32(bytes, 30);
  } else {
    throw DecodeFailure("corrupt BMP data (unknown header size " + std::to_string(info_size) + ")");
  }
  if (height < 0) height = -height;  // negative height: rows stored top-down
  check(width, height);
  if (compression == 1 || compression == 2) {
    throw DecodeFailure("unsupported BMP compression (run-length encoded)");
  }
  if (compression != 0 && compression != 3 && compression != 6) {
    throw DecodeFailure("unsupported BMP compression (" + std::to_string(compression) + ")");
  }
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
    throw DecodeFailure("corrupt BMP data (" + std::to_string(bpp) + " bits per pixel)");
  }
  const uint64_t stride = (static_cast<uint64_t>(width) * bpp + 31) / 32 * 4;
  const uint64_t needed =
      static_cast<uint64_t>(data_offset) + stride * static_cast<uint64_t>(height);
  if (needed > bytes.size()) {
    throw DecodeFailure("BMP data is truncated (its pixel rows need " + std::to_string(needed) +
                        " bytes, the data has " + std::to_string(bytes.size()) + ")");
  }

  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, StbFree> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels, 3));
  if (!pixels) {
    const char* why = stbi_failure_reason();
    throw DecodeFailure(std::string("corrupt BMP data (") + (why != nullptr ? why : "unknown") +
                        ")");
  }
  if (w != width || h != height) throw DecodeFailure("corrupt BMP data (inconsistent size)");
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * h * 3);
  std::memcpy(out.rgb.data(), pixels.get(), out.rgb.size());
  return out;
}

}  // namespace mmserve::media::detail
