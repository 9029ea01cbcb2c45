#include "privacy/text_normalizer.h"

#include "core/utf8.h"

namespace mmserve::privacy {

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
    const size_t length = decode_utf8_char(text, i, cp);
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
