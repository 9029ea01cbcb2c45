#include "image_test_support.h"

#include <cstddef>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
// clang-format on
#include <gif_lib.h>
#include <png.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>

namespace mmserve::testing {

media::Image quadrants(int width, int height) {
  media::Image img{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  const uint8_t colors[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const int q = (y >= height / 2 ? 2 : 0) + (x >= width / 2 ? 1 : 0);
      std::memcpy(&img.rgb[(static_cast<size_t>(y) * width + x) * 3], colors[q], 3);
    }
  }
  return img;
}

Bytes encode_png(const media::Image& image) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&png, nullptr, &size, 0, image.rgb.data(), 0, nullptr);
  Bytes out(size);
  if (png_image_write_to_memory(&png, out.data(), &size, 0, image.rgb.data(), 0, nullptr) == 0) {
    throw std::runtime_error(png.message);
  }
  out.resize(size);
  return out;
}

Bytes encode_png_rgba(int width, int height, uint8_t r, uint8_t g, uint8_t b, uint8_t alpha) {
  std::vector<uint8_t> rgba;
  for (int i = 0; i < width * height; ++i) rgba.insert(rgba.end(), {r, g, b, alpha});
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(width);
  png.height = static_cast<png_uint_32>(height);
  png.format = PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&png, nullptr, &size, 0, rgba.data(), 0, nullptr);
  Bytes out(size);
  png_image_write_to_memory(&png, out.data(), &size, 0, rgba.data(), 0, nullptr);
  out.resize(size);
  return out;
}

Bytes encode_jpeg(const media::Image& image, int quality) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto* row = const_cast<uint8_t*>(
        &image.rgb[static_cast<size_t>(cinfo.next_scanline) * image.width * 3]);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  Bytes out(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

Bytes encode_bmp(const media::Image& image, int bpp, bool top_down) {
  const int channels = bpp / 8;
  const size_t stride = (static_cast<size_t>(image.width) * bpp + 31) / 32 * 4;
  const size_t data = stride * image.height;
  Bytes out(54 + data, 0);
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  out[0] = 'B';
  out[1] = 'M';
  put32(2, static_cast<uint32_t>(out.size()));
  put32(10, 54);
  put32(14, 40);
  put32(18, static_cast<uint32_t>(image.width));
  put32(22, static_cast<uint32_t>(top_down ? -image.height : image.height));
  out[26] = 1;
  out[28] = static_cast<uint8_t>(bpp);
  put32(34, static_cast<uint32_t>(data));
  for (int y = 0; y < image.height; ++y) {
    const int row = top_down ? y : image.height - 1 - y;
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* px = &image.rgb[(static_cast<size_t>(y) * image.width + x) * 3];
      uint8_t* dst = &out[54 + row * stride + static_cast<size_t>(x) * channels];
      dst[0] = px[2];  // BGR
      dst[1] = px[1];
      dst[2] = px[0];
      if (channels == 4) dst[3] = 255;
    }
  }
  return out;
}

Bytes encode_gif(const std::vector<media::Image>& frames, int transparent_rgb) {
  std::map<uint32_t, int> palette;
  for (const auto& f : frames) {
    for (size_t i = 0; i < f.rgb.size(); i += 3) {
      const uint32_t c = f.rgb[i] << 16 | f.rgb[i + 1] << 8 | f.rgb[i + 2];
      palette.emplace(c, 0);
    }
  }
  if (palette.size() > 256) throw std::runtime_error("too many colours for a GIF");
  std::vector<GifColorType> colors(256, GifColorType{0, 0, 0});
  int index = 0;
  for (auto& [c, i] : palette) {
    i = index;
    colors[static_cast<size_t>(index++)] = {static_cast<GifByteType>(c >> 16),
                                            static_cast<GifByteType>(c >> 8),
                                            static_cast<GifByteType>(c)};
  }
  Bytes out;
  int err = 0;
  GifFileType* gif = EGifOpen(
      &out,
      [](GifFileType* g, const GifByteType* data, int n) {
        auto* o = static_cast<Bytes*>(g->UserData);
        o->insert(o->end(), data, data + n);
        return n;
      },
      &err);
  ColorMapObject* map = GifMakeMapObject(256, colors.data());
  EGifSetGifVersion(gif, true);
  EGifPutScreenDesc(gif, frames[0].width, frames[0].height, 8, 0, map);
  for (const auto& f : frames) {
    if (transparent_rgb >= 0) {
      GraphicsControlBlock gcb{};
      gcb.DisposalMode = DISPOSAL_UNSPECIFIED;
      gcb.TransparentColor = palette.at(static_cast<uint32_t>(transparent_rgb));
      GifByteType ext[4];
      const size_t len = EGifGCBToExtension(&gcb, ext);
      EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(len), ext);
    }
    EGifPutImageDesc(gif, 0, 0, f.width, f.height, false, nullptr);
    std::vector<GifPixelType> line(static_cast<size_t>(f.width));
    for (int y = 0; y < f.height; ++y) {
      for (int x = 0; x < f.width; ++x) {
        const uint8_t* p = &f.rgb[(static_cast<size_t>(y) * f.width + x) * 3];
        line[static_cast<size_t>(x)] =
            static_cast<GifPixelType>(palette.at(p[0] << 16 | p[1] << 8 | p[2]));
      }
      EGifPutLine(gif, line.data(), f.width);
    }
  }
  EGifCloseFile(gif, &err);
  GifFreeMapObject(map);
  return out;
}

Bytes encode_webp_lossless(const media::Image& image) {
  uint8_t* data = nullptr;
  const size_t size =
      WebPEncodeLosslessRGB(image.rgb.data(), image.width, image.height, image.width * 3, &data);
  Bytes out(data, data + size);
  WebPFree(data);
  return out;
}

Bytes encode_webp_animated(const std::vector<media::Image>& frames) {
  WebPAnimEncoderOptions options;
  WebPAnimEncoderOptionsInit(&options);
  WebPAnimEncoder* enc = WebPAnimEncoderNew(frames[0].width, frames[0].height, &options);
  WebPConfig config;
  WebPConfigInit(&config);
  config.lossless = 1;
  int timestamp = 0;
  for (const auto& f : frames) {
    WebPPicture pic;
    WebPPictureInit(&pic);
    pic.use_argb = 1;
    pic.width = f.width;
    pic.height = f.height;
    WebPPictureImportRGB(&pic, f.rgb.data(), f.width * 3);
    WebPAnimEncoderAdd(enc, &pic, timestamp, &config);
    WebPPictureFree(&pic);
    timestamp += 100;
  }
  WebPAnimEncoderAdd(enc, nullptr, timestamp, nullptr);
  WebPData data;
  WebPDataInit(&data);
  WebPAnimEncoderAssemble(enc, &data);
  Bytes out(data.bytes, data.bytes + data.size);
  WebPDataClear(&data);
  WebPAnimEncoderDelete(enc);
  return out;
}

Bytes truncated(const Bytes& bytes, size_t n) {
  return Bytes(bytes.begin(),
               bytes.begin() + static_cast<std::ptrdiff_t>(std::min(n, bytes.size())));
}

}  // namespace mmserve::testing
