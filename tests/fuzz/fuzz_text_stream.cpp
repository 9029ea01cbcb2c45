// Fuzzes engine::TextStream, the UTF-8 and stop-string streamer between token pieces and clients.
// The input is split (FuzzedDataProvider) into 0-3 stop strings and a sequence of pieces; the
// pieces are pushed one by one, then the stream is flushed.
//
// Invariants: everything push() and flush() return is well-formed UTF-8 by a strict RFC 3629
// check written here (no overlong forms, no surrogates, nothing above U+10FFFF) and by
// mmserve::is_valid_utf8 (src/core/utf8.h); emitted() is the concatenation of what was returned;
// nothing is returned after stopped(); no stop string appears in the output; and when the pieces
// and stops are well-formed UTF-8, the output is exactly the input up to the first stop string
// complete at the end of some piece (or all of it), so nothing is lost or altered.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/text_stream.h"
#include "fuzz_support.h"
#if __has_include("core/utf8.h")
#include "core/utf8.h"
#define MMSERVE_FUZZ_HAVE_CORE_UTF8 1
#endif

namespace {

// RFC 3629 section 4 (the Unicode Standard's table 3-7 of well-formed byte sequences).
bool strict_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c <= 0x7F) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;  // no overlongs
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;  // no surrogates
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;  // no overlongs
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;  // continuation byte as lead, C0, C1, F5-FF
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

void check_returned(const std::string& out) {
  FUZZ_CHECK(strict_utf8(out));
#ifdef MMSERVE_FUZZ_HAVE_CORE_UTF8
  FUZZ_CHECK(mmserve::is_valid_utf8(out));
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;  // stop matching is quadratic; longer adds nothing
  FuzzedDataProvider input(data, size);
  std::vector<std::string> stops(input.ConsumeIntegralInRange<size_t>(0, 3));
  for (auto& stop : stops) stop = input.ConsumeRandomLengthString(8);
  std::vector<std::string> pieces;
  while (input.remaining_bytes() > 0) pieces.push_back(input.ConsumeRandomLengthString(12));

  mmserve::engine::TextStream stream(stops);
  std::string returned;
  std::string concat;
  bool stopped = false;
  // The model's answer when every byte is well-formed: the first stop string that is complete
  // once some piece is in, at its earliest position; nothing after it.
  std::string expected;
  bool expect_stop = false;
  for (const auto& piece : pieces) {
    const std::string out = stream.push(piece);
    check_returned(out);
    if (stopped) FUZZ_CHECK(out.empty());
    stopped = stopped || stream.stopped();
    FUZZ_CHECK(stream.stopped() == stopped);
    returned += out;
    FUZZ_CHECK(stream.emitted() == returned);

    concat += piece;
    if (!expect_stop) {
      size_t at = std::string::npos;
      for (const auto& stop : stops) {
        if (!stop.empty()) at = std::min(at, concat.find(stop));
      }
      if (at != std::string::npos) {
        expect_stop = true;
        expected = concat.substr(0, at);
      }
    }
  }
  const std::string out = stream.flush();
  check_returned(out);
  if (stopped) FUZZ_CHECK(out.empty());
  returned += out;
  FUZZ_CHECK(stream.emitted() == returned);
  if (!expect_stop) expected = concat;

  const bool well_formed = strict_utf8(concat) &&
                           std::ranges::all_of(stops, [](const auto& s) { return strict_utf8(s); });
  for (const auto& stop : stops) {
    // Replacement characters (U+FFFD for ill-formed bytes) may form a stop that contains one, or
    // whose ill-formed bytes match part of one: only well-formed stops without one are checked.
    const bool checkable =
        well_formed || (strict_utf8(stop) && stop.find("\xEF\xBF\xBD") == std::string::npos);
    if (!stop.empty() && checkable) FUZZ_CHECK(returned.find(stop) == std::string::npos);
  }
  if (well_formed) {
    FUZZ_CHECK(stream.stopped() == expect_stop);
    FUZZ_CHECK(returned == expected);
  }
  return 0;
}
