// GIF through giflib, first frame only: the logical screen size comes from the header (limit
// check), then records are read up to the first image, which is painted onto a white canvas of
// the screen size (its transparent index, from the graphics control extension, stays white).
// Later frames are never decoded.
#include <gif_lib.h>

#include <cstring>
#include <string>

#include "media/image_codecs.h"

namespace mmserve::media::detail {
namespace {

struct Reader {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
  bool short_read = false;  // giflib asked past the end: whatever fails next is truncation
};

int read_bytes(GifFileType* gif, GifByteType* out, int n) {
  auto* r = static_cast<Reader*>(gif->UserData);
  const size_t take = std::min(static_cast<size_t>(n), r->bytes.size() - r->pos);
  std::memcpy(out, r->bytes.data() + r->pos, take);
  r->pos += take;
  if (take < static_cast<size_t>(n)) r->short_read = true;
  return static_cast<int>(take);
}

struct GifCloser {
  GifFileType* gif = nullptr;
  ~GifCloser() {
    int err = 0;
    if (gif != nullptr) DGifCloseFile(gif, &err);
  }
};

[[noreturn]] void fail(int code, const Reader& reader) {
  const char* text = GifErrorString(code);
  const std::string what = text != nullptr ? text : "error " + std::to_string(code);
  if (reader.short_read || code == D_GIF_ERR_READ_FAILED || code == D_GIF_ERR_EOF_TOO_SOON) {
    throw DecodeFailure("GIF data is truncated (" + what + ")");
  }
  throw DecodeFailure("corrupt GIF data (" + what + ")");
}

}  // namespace

Image decode_gif(std::span<const uint8_t> bytes, const DimsCheck& check) {
  Reader reader{bytes};
  int err = 0;
  GifCloser closer;
  closer.gif = DGifOpen(&reader, read_bytes, &err);
  if (closer.gif == nullptr) fail(err, reader);
  GifFileType* gif = closer.gif;
  check(gif->SWidth, gif->SHeight);

  Image out;
  out.width = gif->SWidth;
  out.height = gif->SHeight;
  out.rgb.assign(static_cast<size_t>(out.width) * out.height * 3, 255);
  int transparent = NO_TRANSPARENT_COLOR;

  for (;;) {
    GifRecordType type = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(gif, &type) == GIF_ERROR) fail(gif->Error, reader);
    if (type == TERMINATE_RECORD_TYPE) throw DecodeFailure("the GIF has no image frame");
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) fail(gif->Error, reader);
      if (code == GRAPHICS_EXT_FUNC_CODE && ext != nullptr) {
        GraphicsControlBlock gcb{};
        if (DGifExtensionToGCB(ext[0], ext + 1, &gcb) == GIF_OK) {
          transparent = gcb.TransparentColor;
        }
      }
      while (ext != nullptr) {
        if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) fail(gif->Error, reader);
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;

    if (DGifGetImageDesc(gif) == GIF_ERROR) fail(gif->Error, reader);
    const GifImageDesc& d = gif->Image;
    check(d.Width, d.Height);  // a frame may claim more than the screen
    const ColorMapObject* map = d.ColorMap != nullptr ? d.ColorMap : gif->SColorMap;
    if (map == nullptr) throw DecodeFailure("corrupt GIF data (no colour map)");
    std::vector<GifPixelType> line(static_cast<size_t>(d.Width));
    // Interlaced images deliver rows in four passes.
    static constexpr int kStart[] = {0, 4, 2, 1};
    static constexpr int kStep[] = {8, 8, 4, 2};
    const int passes = d.Interlace ? 4 : 1;
    for (int pass = 0; pass < passes; ++pass) {
      const int start = d.Interlace ? kStart[pass] : 0;
      const int step = d.Interlace ? kStep[pass] : 1;
      for (int y = start; y < d.Height; y += step) {
        if (DGifGetLine(gif, line.data(), d.Width) == GIF_ERROR) fail(gif->Error, reader);
        const int cy = d.Top + y;
        if (cy < 0 || cy >= out.height) continue;
        for (int x = 0; x < d.Width; ++x) {
          const int cx = d.Left + x;
          const int index = line[static_cast<size_t>(x)];
          if (cx < 0 || cx >= out.width || index == transparent || index >= map->ColorCount) {
            continue;
          }
          uint8_t* px = out.rgb.data() + (static_cast<size_t>(cy) * out.width + cx) * 3;
          px[0] = map->Colors[index].Red;
          px[1] = map->Colors[index].Green;
          px[2] = map->Colors[index].Blue;
        }
      }
    }
    return out;  // the first frame only
  }
}

}  // namespace mmserve::media::detail
