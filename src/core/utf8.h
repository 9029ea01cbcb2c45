// The one UTF-8 validator for text that leaves the engines (generated text, transcripts, token
// pieces, model metadata). Strict RFC 3629: no overlong forms (C0, C1, E0 80-9F, F0 80-8F), no
// surrogates (ED A0-BF), nothing above U+10FFFF (F4 90+, F5-FF). Stateless and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mmserve {

// True when `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

// Replaces each maximal ill-formed subpart with U+FFFD (the W3C/Unicode "substitution of
// maximal subparts" practice), so the result is always well-formed.
std::string sanitize_utf8(std::string_view text);

// The well-formed character at text[i]: returns its length (1 to 4) and sets `code_point`;
// returns 0 when the bytes there are ill-formed or cut short (`code_point` is then unset).
size_t decode_utf8_char(std::string_view text, size_t i, char32_t& code_point);

// Length of the longest prefix of `bytes` that does not end inside a character that is still
// well-formed so far (a character split across tokens). Ill-formed bytes do not hold the
// prefix back: they are complete, and sanitize_utf8 replaces them.
size_t complete_utf8_prefix(std::string_view bytes);

// Whether `pending` (the incomplete end of a text, see complete_utf8_prefix) followed by `piece`
// keeps the text well-formed, a character still split across tokens allowed at its end; sets
// `tail` to the new incomplete end.
bool extends_utf8(std::string_view pending, std::string_view piece, std::string& tail);

}  // namespace mmserve
