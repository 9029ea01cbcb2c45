// WebP through libwebp: WebPGetFeatures reads the header (limit check); a still picture is
// decoded directly, an animated one through the animation decoder for its first, composed
// frame. Alpha is composited over white.
#include <webp/decode.h>
#include <webp/demux.h>

#include <string>

#include "media/image_codecs.h"

namespace mmserve::media::detail {
namespace {

std::string status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    case VP8_STATUS_OK: return "ok";
  }
  return "error";
}

[[noreturn]] void fail(VP8StatusCode status) {
  if (status == VP8_STATUS_NOT_ENOUGH_DATA) {
    throw DecodeFailure("WebP data is truncated (not enough data)");
  }
  throw DecodeFailure("corrupt WebP data (" + status_text(status) + ")");
}

Image first_animation_frame(std::span<const uint8_t> bytes) {
  WebPData data{bytes.data(), bytes.size()};
  WebPAnimDecoderOptions options;
  if (WebPAnimDecoderOptionsInit(&options) == 0) throw DecodeFailure("libwebp version mismatch");
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  WebPAnimDecoder* dec = WebPAnimDecoderNew(&data, &options);
  if (dec == nullptr) throw DecodeFailure("corrupt or truncated animated WebP data");
  struct Closer {
    WebPAnimDecoder* dec;
    ~Closer() { WebPAnimDecoderDelete(dec); }
  } closer{dec};
  WebPAnimInfo info;
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (WebPAnimDecoderGetInfo(dec, &info) == 0 ||
      WebPAnimDecoderGetNext(dec, &rgba, &timestamp) == 0) {
    throw DecodeFailure("corrupt or truncated animated WebP data");
  }
  Image out;
  out.width = static_cast<int>(info.canvas_width);
  out.height = static_cast<int>(info.canvas_height);
  out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
  rgba_over_white(rgba, static_cast<size_t>(out.width) * out.height, out.rgb.data());
  return out;
}

}  // namespace

Image decode_webp(std::span<const uint8_t> bytes, const DimsCheck& check) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &features);
  if (status != VP8_STATUS_OK) fail(status);
  check(features.width, features.height);
  if (features.has_animation != 0) return first_animation_frame(bytes);

  Image out;
  out.width = features.width;
  out.height = features.height;
  const size_t pixels = static_cast<size_t>(out.width) * out.height;
  out.rgb.resize(pixels * 3);
  WebPDecoderConfig config;
  if (WebPInitDecoderConfig(&config) == 0) throw DecodeFailure("libwebp version mismatch");
  std::vector<uint8_t> rgba;
  if (features.has_alpha != 0) {
    rgba.resize(pixels * 4);
    config.output.colorspace = MODE_RGBA;
    config.output.u.RGBA.rgba = rgba.data();
    config.output.u.RGBA.stride = out.width * 4;
    config.output.u.RGBA.size = rgba.size();
  } else {
    config.output.colorspace = MODE_RGB;
    config.output.u.RGBA.rgba = out.rgb.data();
    config.output.u.RGBA.stride = out.width * 3;
    config.output.u.RGBA.size = out.rgb.size();
  }
  config.output.is_external_memory = 1;
  const VP8StatusCode decoded = WebPDecode(bytes.data(), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);  // external memory: frees nothing of ours
  if (decoded != VP8_STATUS_OK) fail(decoded);
  if (features.has_alpha != 0) rgba_over_white(rgba.data(), pixels, out.rgb.data());
  return out;
}

}  // namespace mmserve::media::detail
