#include "privacy/text_normalizer.h"

namespace mmserve::privacy {

namespace {

bool is_continuation(unsigned char byte) {
  return (byte & 0xC0) == 0x80;
}

// Length of the well-formed character at text[i], and its code point; 0 when ill-formed.
size_t decode_one(std::string_view text, size_t i, char32_t& cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char b0 = byte(0);
  const size_t left = text.size() - i;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (left < 2 || !is_continuation(byte(1))) return 0;
    cp = (char32_t{b0} & 0x1F) << 6 | (byte(1) & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char b1 = byte(1);
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    if (b1 < lo || b1 > hi || !is_continuation(byte(2))) return 0;
    cp = (char32_t{b0} & 0x0F) << 12 | (char32_t{b1} & 0x3F) << 6 | (byte(2) & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char b1 = byte(1);
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (b1 < lo || b1 > hi || !is_continuation(byte(2)) || !is_continuation(byte(3))) return 0;
    cp = (char32_t{b0} & 0x07) << 18 | (char32_t{b1} & 0x3F) << 12 |
         (char32_t{byte(2)} & 0x3F) << 6 | (byte(3) & 0x3F);
    return 4;
  }
  return 0;
}

}  // namespace

char32_t fold_code_point(char32_t cp) noexcept {
  if (cp >= 0xFF10 && cp <= 0xFF19) return U'0' + (cp - 0xFF10);
  if (cp >= 0xFF21 && cp <= 0xFF3A) return U'A' + (cp - 0xFF21);
  if (cp >= 0xFF41 && cp <= 0xFF5A) return U'a' + (cp - 0xFF41);
  if (cp >= 0x2010 && cp <= 0x2015) return U'-';
  switch (cp) {
    case 0xFF20: return U'@';
    case 0xFF0E: return U'.';
    case 0xFF08: return U'(';
    case 0xFF09: return U')';
    case 0xFF0D: return U'-';
    case 0xFF1A: return U':';
    case 0xFF0B: return U'+';
    case 0xFF0F: return U'/';
    case 0x2212: return U'-';
    case 0x3000: return U' ';
    case 0x00A0: return U' ';
    default: return cp;
  }
}

NormalizedText normalize_text(std::string_view text) {
  NormalizedText out;
  out.chars.reserve(text.size());
  out.offsets.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp = 0;
    const size_t length = decode_one(text, i, cp);
    out.offsets.push_back(i);
    if (length == 0) {
      out.chars.push_back(kInvalidUnit);
      ++i;
    } else {
      out.chars.push_back(fold_code_point(cp));
      i += length;
    }
  }
  out.offsets.push_back(text.size());
  return out;
}

}  // namespace mmserve::privacy
