#include "core/utf8.h"

namespace mmserve {
namespace {

enum class Scan { kValid, kIncomplete, kInvalid };

// Reads the character starting at text[i]. kValid sets `len` to its length; kIncomplete means
// the bytes up to the end are a well-formed start of a longer character; kInvalid sets `len` to
// the length of the maximal ill-formed subpart (at least 1).
Scan scan_character(std::string_view text, size_t i, size_t& len) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    len = 1;
    return Scan::kValid;
  }
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) {
      lo = 0xA0;  // overlong
    }
    if (lead == 0xED) {
      hi = 0x9F;  // surrogates
    }
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) {
      lo = 0x90;  // overlong
    }
    if (lead == 0xF4) {
      hi = 0x8F;  // above U+10FFFF
    }
  } else {
    len = 1;  // continuation byte, C0, C1, F5-FF
    return Scan::kInvalid;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= text.size()) {
      return Scan::kIncomplete;
    }
    const unsigned char c = byte(k);
    const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) {
      len = k;
      return Scan::kInvalid;
    }
  }
  len = need;
  return Scan::kValid;
}

}  // namespace

size_t decode_utf8_char(std::string_view text, size_t i, char32_t& code_point) {
  size_t len = 0;
  if (i >= text.size() || scan_character(text, i, len) != Scan::kValid) {
    return 0;
  }
  static constexpr unsigned char kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = static_cast<unsigned char>(text[i]) & kLeadMask[len];
  for (size_t k = 1; k < len; ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
  }
  code_point = cp;
  return len;
}

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    if (scan_character(text, i, len) != Scan::kValid) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  if (is_valid_utf8(text)) {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const Scan s = scan_character(text, i, len);
    if (s == Scan::kValid) {
      out.append(text.substr(i, len));
    } else {
      out += "\xEF\xBF\xBD";
      if (s == Scan::kIncomplete) {
        break;  // a truncated character at the very end
      }
    }
    i += len;
  }
  return out;
}

bool extends_utf8(std::string_view pending, std::string_view piece, std::string& tail) {
  std::string text;
  text.reserve(pending.size() + piece.size());
  text.append(pending).append(piece);
  const size_t complete = complete_utf8_prefix(text);
  if (!is_valid_utf8(std::string_view(text).substr(0, complete))) return false;
  tail = text.substr(complete);
  return true;
}

size_t complete_utf8_prefix(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t len = 0;
    if (scan_character(bytes, i, len) == Scan::kIncomplete) {
      return i;
    }
    i += len;
  }
  return bytes.size();
}

}  // namespace mmserve
