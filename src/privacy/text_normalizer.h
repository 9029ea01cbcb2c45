// Decodes UTF-8 text into code points, each with its byte span in the original text, and folds
// the characters that hide identifiers from the detectors: full-width digits and letters
// (U+FF10-FF19, U+FF21-FF3A, U+FF41-FF5A) to ASCII; full-width '@' '.' '(' ')' '-' ':' '+' '/'
// to ASCII; U+3000 (ideographic space) and U+00A0 (no-break space) to ' '; the hyphen variants
// U+2010-U+2015 and U+2212 (minus) to '-'. Nothing else changes: case is kept, and U+3002 '。'
// stays a sentence end (it is not a '.').
//
// Strict RFC 3629 decoding (no overlong forms, surrogates or values above U+10FFFF); an
// ill-formed byte never throws: it becomes one unit of its own, kInvalidUnit, which no detector
// treats as a letter, digit or separator. Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mmserve::privacy {

// Stands for one ill-formed byte (outside Unicode, so it never equals a real character).
inline constexpr char32_t kInvalidUnit = 0x110000;

struct NormalizedText {
  std::u32string chars;         // folded code points (or kInvalidUnit), in text order
  std::vector<size_t> offsets;  // offsets[i]: first byte of chars[i]; offsets[size()]: the end

  size_t size() const noexcept { return chars.size(); }
  // Byte span in the original text of the code points [first, last).
  size_t byte_begin(size_t first) const noexcept { return offsets[first]; }
  size_t byte_end(size_t last) const noexcept { return offsets[last]; }
};

// The folded form of one code point (itself when nothing folds it).
char32_t fold_code_point(char32_t cp) noexcept;

// Decodes and folds `text`; offsets always has size() + 1 entries.
NormalizedText normalize_text(std::string_view text);

}  // namespace mmserve::privacy
