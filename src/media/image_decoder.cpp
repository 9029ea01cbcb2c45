#include "media/image_decoder.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "media/image_codecs.h"

namespace mmserve::media {
namespace {

bool starts_with(std::span<const uint8_t> bytes, std::string_view magic, size_t at = 0) {
  if (bytes.size() < at + magic.size()) return false;
  for (size_t i = 0; i < magic.size(); ++i) {
    if (bytes[at + i] != static_cast<uint8_t>(magic[i])) return false;
  }
  return true;
}

std::string human_size(uint64_t bytes) {
  if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10)) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kUnknown: return "unknown";
  }
  return "unknown";
}

ImageFormat sniff_image_format(std::span<const uint8_t> bytes) {
  if (starts_with(bytes, "\xFF\xD8\xFF")) return ImageFormat::kJpeg;
  if (starts_with(bytes, "\x89PNG\r\n\x1A\n")) return ImageFormat::kPng;
  if (starts_with(bytes, "GIF87a") || starts_with(bytes, "GIF89a")) return ImageFormat::kGif;
  if (starts_with(bytes, "RIFF") && starts_with(bytes, "WEBP", 8)) return ImageFormat::kWebp;
  if (starts_with(bytes, "BM")) return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

Image decode_image(std::span<const uint8_t> bytes, const ImageLimits& limits,
                   const std::string& field) {
  auto fail = [&](const std::string& why) -> Error {
    return Error(ErrorCode::kInvalidInput, "invalid image in '" + field + "': " + why, field);
  };
  if (bytes.empty()) throw fail("the image is empty");
  if (bytes.size() > limits.max_bytes) {
    throw fail("the image is " + human_size(bytes.size()) + ", over the limit of " +
               human_size(limits.max_bytes) + " (--max-image-bytes)");
  }
  const ImageFormat format = sniff_image_format(bytes);
  const auto check = [&](int64_t width, int64_t height) {
    if (width <= 0 || height <= 0) {
      throw fail(std::string(image_format_name(format)) + " header gives an empty picture (" +
                 std::to_string(width) + "x" + std::to_string(height) + ")");
    }
    // Checked before decoding: a few KiB may claim gigapixels (a decompression bomb).
    if (width > limits.max_pixels / height) {
      throw fail("the picture is " + std::to_string(width) + "x" + std::to_string(height) +
                 " pixels, over the limit of " + std::to_string(limits.max_pixels) +
                 " pixels (--max-image-pixels)");
    }
  };
  try {
    switch (format) {
      case ImageFormat::kJpeg: return detail::decode_jpeg(bytes, check);
      case ImageFormat::kPng: return detail::decode_png(bytes, check);
      case ImageFormat::kBmp: return detail::decode_bmp(bytes, check);
      case ImageFormat::kGif: return detail::decode_gif(bytes, check);
      case ImageFormat::kWebp: return detail::decode_webp(bytes, check);
      case ImageFormat::kUnknown: break;
    }
  } catch (const detail::DecodeFailure& e) {
    throw fail(e.what());
  }
  throw fail("not a JPEG, PNG, BMP, GIF or WebP image (unrecognised leading bytes)");
}

Image load_image_file(const std::string& path, const ImageLimits& limits) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, "image file not found: " + path, "image");
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > limits.max_bytes) {
    throw Error(ErrorCode::kInvalidInput,
                "image " + path + " is " + human_size(size) + ", over the limit of " +
                    human_size(limits.max_bytes) + " (--max-image-bytes)",
                "image");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kInvalidInput, "cannot read image file " + path, "image");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  return decode_image(bytes, limits, path);
}

void detail::rgba_over_white(const uint8_t* rgba, size_t pixels, uint8_t* rgb) {
  for (size_t i = 0; i < pixels; ++i) {
    const unsigned a = rgba[4 * i + 3];
    for (int c = 0; c < 3; ++c) {
      // Rounded (v*a + 255*(255-a)) / 255.
      const unsigned v = rgba[4 * i + c] * a + 255u * (255u - a);
      rgb[3 * i + c] = static_cast<uint8_t>((v + 127u) / 255u);
    }
  }
}

}  // namespace mmserve::media
