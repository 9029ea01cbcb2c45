// Fuzzes media::decode_image, one executable per format (fuzz_image_jpeg, _png, _gif, _webp,
// _bmp: MMSERVE_FUZZ_IMAGE_FORMAT names the media::ImageFormat); inputs of another format are
// rejected so each fuzzer stays on its codec.
//
// Invariants: a decoded picture has positive dimensions within ImageLimits::max_pixels and exactly
// width * height * 3 bytes of RGB; decoding never allocates much more than the pixel limit allows
// (dimensions are checked before pixels are decoded: decompression bombs); input over max_bytes is
// refused; every refusal is Error(kInvalidInput) naming the field. Plus ASan and UBSan.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_support.h"
#include "media/image_decoder.h"

namespace {

using mmserve::media::ImageFormat;

constexpr ImageFormat kFormat = ImageFormat::MMSERVE_FUZZ_IMAGE_FORMAT;
constexpr mmserve::media::ImageLimits kLimits{.max_bytes = 256 << 10, .max_pixels = 1 << 20};
// RGBA and RGB copies of the largest allowed picture, plus the codecs' own tables and rows.
constexpr size_t kLargestAllocation = 8 * static_cast<size_t>(kLimits.max_pixels) + (8u << 20);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  if (mmserve::media::sniff_image_format(bytes) != kFormat) return -1;  // not in the corpus
  try {
    mmserve::fuzz::AllocationWatch watch;
    const mmserve::media::Image image = mmserve::media::decode_image(bytes, kLimits, "input");
    FUZZ_CHECK(watch.largest() <= kLargestAllocation);
    FUZZ_CHECK(size <= kLimits.max_bytes);
    FUZZ_CHECK(image.width > 0 && image.height > 0);
    FUZZ_CHECK(static_cast<int64_t>(image.width) * image.height <= kLimits.max_pixels);
    FUZZ_CHECK(image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3);
  } catch (const mmserve::Error& e) {
    mmserve::fuzz::expect_code(e, {mmserve::ErrorCode::kInvalidInput});
    mmserve::fuzz::expect_field(e, "input");
  }
  return 0;
}
