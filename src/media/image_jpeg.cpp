// JPEG through libjpeg(-turbo). libjpeg reports fatal errors through error_exit (longjmp back
// here) and damaged data through warnings it then papers over with grey; the warnings that mean
// "truncated" or "corrupt" are turned into failures, so a broken upload is refused, not captioned.
// jpeglib.h needs size_t and FILE declared first.
#include <cstddef>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <csetjmp>
#include <string>

#include "media/image_codecs.h"

namespace mmserve::media::detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr base;  // first member: libjpeg casts the pointer back
  std::jmp_buf jump;
  std::string message;
  bool truncated = false;
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  // The memory source reports running out of data as this warning (and then fakes an end).
  err->truncated = cinfo->err->msg_code == JWRN_JPEG_EOF;
  char buf[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buf);
  err->message = buf;
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
      code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL || code == JWRN_BOGUS_PROGRESSION) {
    on_error(cinfo);
  }
}

// Adobe CMYK JPEGs store inverted values; convert to RGB the way viewers do.
void cmyk_to_rgb(const uint8_t* cmyk, int width, bool inverted, uint8_t* rgb) {
  for (int x = 0; x < width; ++x) {
    unsigned c = cmyk[4 * x], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
    if (!inverted) {
      c = 255 - c;
      m = 255 - m;
      y = 255 - y;
      k = 255 - k;
    }
    rgb[3 * x] = static_cast<uint8_t>(c * k / 255);
    rgb[3 * x + 1] = static_cast<uint8_t>(m * k / 255);
    rgb[3 * x + 2] = static_cast<uint8_t>(y * k / 255);
  }
}

}  // namespace

Image decode_jpeg(std::span<const uint8_t> bytes, const DimsCheck& check) {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = on_error;
  err.base.emit_message = on_message;
  // Everything that must be released on the error path lives outside the setjmp frame.
  Image image;
  std::vector<uint8_t> row;
  std::string check_failure;
  if (setjmp(err.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    if (err.truncated) {
      throw DecodeFailure("JPEG data is truncated (" + err.message + ")");
    }
    throw DecodeFailure("corrupt JPEG data (" + err.message + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);

  // The limit check may throw a C++ exception; it must not unwind through libjpeg frames, and
  // here it does not: jpeg_read_header has returned.
  try {
    check(cinfo.image_width, cinfo.image_height);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }

  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  image.width = static_cast<int>(cinfo.output_width);
  image.height = static_cast<int>(cinfo.output_height);
  image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);
  row.resize(static_cast<size_t>(image.width) * cinfo.output_components);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = image.rgb.data() + static_cast<size_t>(cinfo.output_scanline) * image.width * 3;
    JSAMPROW rows[1] = {cmyk ? row.data() : dst};
    jpeg_read_scanlines(&cinfo, rows, 1);
    if (cmyk) cmyk_to_rgb(row.data(), image.width, cinfo.saw_Adobe_marker != 0, dst);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return image;
}

}  // namespace mmserve::media::detail
