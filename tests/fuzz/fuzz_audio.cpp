// Fuzzes media::decode_audio (FFmpeg demuxers and decoders over bytes in memory) with small
// limits.
//
// Invariants: the decoder reads only the bytes it is given (NoIoScope: opening a file or a
// socket aborts, so no demuxer may follow a reference to another file or URL); a decoded result
// is non-empty mono audio no longer than max_seconds, from a demuxer on the whitelist, with a
// positive source rate and channel count; input over max_bytes is refused with kPayloadTooLarge;
// every refusal is Error(kInvalidInput / kPayloadTooLarge) naming the field. Plus ASan and UBSan
// (FFmpeg itself is not instrumented: only its crashes show).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "fuzz_support.h"
#include "media/audio_decode.h"
#include "no_io_guard.h"

namespace {

constexpr mmserve::media::AudioLimits kLimits{.max_bytes = 128 << 10, .max_seconds = 4};

// FFmpeg's names for the demuxers decode_audio allows ("mov,mp4,m4a,3gp,3g2,mj2" is one).
bool whitelisted(std::string_view container) {
  for (const std::string_view name : {"wav", "w64", "aiff", "caf", "mp3", "flac", "ogg", "aac",
                                      "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}) {
    if (container == name) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    mmserve::fuzz::NoIoScope no_io;
    const auto audio = mmserve::media::decode_audio(std::span(data, size), kLimits, "file");
    FUZZ_CHECK(size <= kLimits.max_bytes);
    FUZZ_CHECK(!audio.samples.empty());
    FUZZ_CHECK(audio.seconds() <= kLimits.max_seconds);
    FUZZ_CHECK(whitelisted(audio.container));
    FUZZ_CHECK(!audio.codec.empty());
    FUZZ_CHECK(audio.source_rate > 0 && audio.source_channels > 0);
  } catch (const mmserve::Error& e) {
    mmserve::fuzz::expect_code(
        e, {mmserve::ErrorCode::kInvalidInput, mmserve::ErrorCode::kPayloadTooLarge});
    mmserve::fuzz::expect_field(e, "file");
    FUZZ_CHECK(size <= kLimits.max_bytes || e.code() == mmserve::ErrorCode::kPayloadTooLarge);
  }
  return 0;
}
