// Image decoding from bytes: every format gives the pixels it was made from, limits are
// enforced from the header, and damaged data is refused with a reason and the field.
#include "media/image_decoder.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "image_test_support.h"
#include "test_support.h"

using namespace mmserve;
using namespace mmserve::testing;

namespace {

media::Image decode(const Bytes& bytes, media::ImageLimits limits = {}) {
  return media::decode_image(bytes, limits, "input");
}

// The Error decode raises, or a failure when it decodes.
Error decode_error(const Bytes& bytes, media::ImageLimits limits = {}) {
  try {
    decode(bytes, limits);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "decoded without error";
  return Error(ErrorCode::kInternal, "");
}

void expect_pixel(const media::Image& img, int x, int y, int r, int g, int b, int tolerance = 0) {
  const uint8_t* p = &img.rgb[(static_cast<size_t>(y) * img.width + x) * 3];
  EXPECT_NEAR(p[0], r, tolerance) << "at " << x << "," << y;
  EXPECT_NEAR(p[1], g, tolerance) << "at " << x << "," << y;
  EXPECT_NEAR(p[2], b, tolerance) << "at " << x << "," << y;
}

// A PNG that claims width x height but holds a tiny (wrong) IDAT: only the header is real.
Bytes png_claiming(uint32_t width, uint32_t height) {
  Bytes png = encode_png(quadrants(4, 4));
  // IHDR data starts at byte 16 (8 signature + 4 length + 4 "IHDR"); its CRC must be fixed.
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = static_cast<uint8_t>(width >> (24 - 8 * i));
    png[20 + i] = static_cast<uint8_t>(height >> (24 - 8 * i));
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 12; i < 12 + 4 + 13; ++i) {
    crc ^= png[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xFFFFFFFFu;
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  return png;
}

}  // namespace

TEST(ImageDecoder, SniffsEveryFormat) {
  const auto img = quadrants(8, 8);
  EXPECT_EQ(media::sniff_image_format(encode_png(img)), media::ImageFormat::kPng);
  EXPECT_EQ(media::sniff_image_format(encode_jpeg(img)), media::ImageFormat::kJpeg);
  EXPECT_EQ(media::sniff_image_format(encode_bmp(img)), media::ImageFormat::kBmp);
  EXPECT_EQ(media::sniff_image_format(encode_gif({img})), media::ImageFormat::kGif);
  EXPECT_EQ(media::sniff_image_format(encode_webp_lossless(img)), media::ImageFormat::kWebp);
  const Bytes text = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_EQ(media::sniff_image_format(text), media::ImageFormat::kUnknown);
}

TEST(ImageDecoder, LosslessFormatsGiveTheExactPixels) {
  const auto img = quadrants(37, 23);  // odd sizes: BMP row padding, odd quadrant edges
  for (const auto& [name, bytes] :
       std::vector<std::pair<std::string, Bytes>>{{"png", encode_png(img)},
                                                  {"bmp24", encode_bmp(img, 24)},
                                                  {"bmp32", encode_bmp(img, 32)},
                                                  {"bmp top-down", encode_bmp(img, 24, true)},
                                                  {"gif", encode_gif({img})},
                                                  {"webp", encode_webp_lossless(img)}}) {
    const auto out = decode(bytes);
    EXPECT_EQ(out.width, 37) << name;
    EXPECT_EQ(out.height, 23) << name;
    EXPECT_EQ(out.rgb, img.rgb) << name;
  }
}

TEST(ImageDecoder, JpegDecodesCloseToItsSource) {
  const auto out = decode(encode_jpeg(quadrants(64, 48)));
  ASSERT_EQ(out.width, 64);
  ASSERT_EQ(out.height, 48);
  expect_pixel(out, 5, 5, 255, 0, 0, 12);
  expect_pixel(out, 60, 5, 0, 255, 0, 12);
  expect_pixel(out, 5, 44, 0, 0, 255, 12);
  expect_pixel(out, 60, 44, 255, 255, 255, 12);
}

TEST(ImageDecoder, AlphaIsCompositedOverWhite) {
  const auto opaque = decode(encode_png_rgba(4, 4, 0, 0, 0, 255));
  expect_pixel(opaque, 1, 1, 0, 0, 0);
  const auto clear = decode(encode_png_rgba(4, 4, 0, 0, 0, 0));
  expect_pixel(clear, 1, 1, 255, 255, 255);
  const auto half = decode(encode_png_rgba(4, 4, 0, 0, 0, 128));
  expect_pixel(half, 1, 1, 127, 127, 127, 1);
}

TEST(ImageDecoder, GifGivesItsFirstFrameOnly) {
  const auto first = quadrants(16, 16);
  media::Image second = first;
  std::ranges::fill(second.rgb, 0);  // all black
  const auto out = decode(encode_gif({first, second}));
  EXPECT_EQ(out.rgb, first.rgb);
}

TEST(ImageDecoder, GifTransparencyIsWhite) {
  media::Image img = quadrants(16, 16);
  const auto out = decode(encode_gif({img}, 0xFF0000));  // red is the transparent colour
  expect_pixel(out, 1, 1, 255, 255, 255);                // was red
  expect_pixel(out, 14, 1, 0, 255, 0);                   // green stays
}

TEST(ImageDecoder, AnimatedWebpGivesItsFirstFrame) {
  const auto first = quadrants(16, 16);
  media::Image second = first;
  std::ranges::fill(second.rgb, 0);
  const auto out = decode(encode_webp_animated({first, second}));
  EXPECT_EQ(out.width, 16);
  EXPECT_EQ(out.rgb, first.rgb);
}

TEST(ImageDecoder, TruncatedDataIsRefusedAsTruncated) {
  const auto img = quadrants(64, 64);
  for (const auto& [name, bytes] :
       std::vector<std::pair<std::string, Bytes>>{{"JPEG", encode_jpeg(img)},
                                                  {"PNG", encode_png(img)},
                                                  {"BMP", encode_bmp(img)},
                                                  {"GIF", encode_gif({img})},
                                                  {"WebP", encode_webp_lossless(img)}}) {
    const Error e = decode_error(truncated(bytes, bytes.size() * 2 / 3));
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << name;
    EXPECT_EQ(e.field(), "input") << name;
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos)
        << name << ": " << e.what();
  }
}

TEST(ImageDecoder, CorruptDataIsRefused) {
  const auto img = quadrants(64, 64);
  auto scrambled = [](Bytes b) {  // the header kept, the middle of the data garbled
    for (size_t i = b.size() / 3; i < b.size() * 2 / 3; ++i) b[i] ^= 0x5A;
    return b;
  };
  // A noisy picture, so that the middle of the JPEG file is entropy-coded data.
  media::Image noisy = quadrants(128, 128);
  uint32_t state = 12345;
  for (auto& v : noisy.rgb) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(state >> 24);
  }
  auto bad_record = [](Bytes b) {  // the first record after the palette is not a known one
    const size_t at = 13 + 3 * 256;
    EXPECT_EQ(b[at], ',');
    b[at] = 'x';
    return b;
  };
  for (const auto& [name, bad] :
       std::vector<std::pair<std::string, Bytes>>{{"JPEG", scrambled(encode_jpeg(noisy))},
                                                  {"PNG", scrambled(encode_png(img))},
                                                  {"GIF", bad_record(encode_gif({img}))},
                                                  {"WebP", scrambled(encode_webp_lossless(img))}}) {
    const Error e = decode_error(bad);
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << name;
    EXPECT_NE(std::string(e.what()).find("corrupt " + name), std::string::npos) << e.what();
  }
}

TEST(ImageDecoder, UnknownAndEmptyDataAreRefused) {
  const Bytes text = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
  EXPECT_NE(std::string(decode_error(text).what()).find("not a JPEG, PNG"), std::string::npos);
  EXPECT_NE(std::string(decode_error({}).what()).find("empty"), std::string::npos);
}

TEST(ImageDecoder, PixelLimitIsCheckedFromTheHeaderBeforeDecoding) {
  // 100000 x 100000 claimed by a file of a few dozen bytes: a decompression bomb.
  const Bytes bomb = png_claiming(100000, 100000);
  ASSERT_LT(bomb.size(), 200u);
  const Error e = decode_error(bomb);
  EXPECT_NE(std::string(e.what()).find("--max-image-pixels"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("100000x100000"), std::string::npos) << e.what();

  media::ImageLimits small;
  small.max_pixels = 100;
  for (const auto& bytes :
       {encode_jpeg(quadrants(20, 20)), encode_bmp(quadrants(20, 20)),
        encode_gif({quadrants(20, 20)}), encode_webp_lossless(quadrants(20, 20))}) {
    EXPECT_NE(std::string(decode_error(bytes, small).what()).find("--max-image-pixels"),
              std::string::npos);
  }
  small.max_pixels = 400;
  EXPECT_EQ(decode(encode_png(quadrants(20, 20)), small).width, 20);
}

TEST(ImageDecoder, ByteLimitIsChecked) {
  const Bytes png = encode_png(quadrants(64, 64));
  media::ImageLimits limits;
  limits.max_bytes = png.size() - 1;
  EXPECT_NE(std::string(decode_error(png, limits).what()).find("--max-image-bytes"),
            std::string::npos);
  limits.max_bytes = png.size();
  EXPECT_EQ(decode(png, limits).width, 64);
}

TEST(ImageDecoder, RealPhotoDecodes) {
  const std::string path = shared_path("media/test-1.jpeg");
  MMSERVE_REQUIRE_SHARED(path);
  const auto img = media::load_image_file(path, {});
  EXPECT_EQ(img.width, 640);
  EXPECT_EQ(img.height, 488);
  EXPECT_EQ(img.rgb.size(), 640u * 488u * 3u);
}

TEST(ImageDecoder, MissingFileIsNotFound) {
  try {
    media::load_image_file("/nonexistent/picture.png", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}
