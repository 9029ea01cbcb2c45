// The strict UTF-8 validator (core/utf8.h): RFC 3629 well-formedness, replacement of maximal
// ill-formed subparts, and holding back a character split across tokens.
#include "core/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using mmserve::complete_utf8_prefix;
using mmserve::is_valid_utf8;
using mmserve::sanitize_utf8;

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, WellFormedTextIsValid) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain \xE5\x88\x86\xE6\x9E\x90"));        // 分析
  EXPECT_TRUE(is_valid_utf8("\xC2\x80\xDF\xBF"));                      // U+0080, U+07FF
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80"));  // U+0800, U+D7FF, U+E000
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"));      // U+10000, U+10FFFF
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));                      // emoji
}

TEST(Utf8, EveryIllFormedClassIsRejected) {
  for (const std::string bad :
       {"\x80", "\xBF", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF", "\xED\xA0\x80",
        "\xED\xBF\xBF", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80",
        "\xF5\x80\x80\x80", "\xF7\xBF\xBF\xBF", "\xF8\x88\x80\x80\x80", "\xFE", "\xFF", "\xE5\x88",
        "\xC3\x28"}) {
    EXPECT_FALSE(is_valid_utf8(bad)) << testing::PrintToString(bad);
    const std::string clean = sanitize_utf8(bad);
    EXPECT_TRUE(is_valid_utf8(clean)) << testing::PrintToString(bad);
    EXPECT_NE(clean.find(kFffd), std::string::npos);
  }
}

TEST(Utf8, SanitizeReplacesMaximalSubparts) {
  EXPECT_EQ(sanitize_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(sanitize_utf8("a\x80z"), "a" + kFffd + "z");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), kFffd + kFffd);              // overlong: two bytes, two
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // surrogate
  EXPECT_EQ(sanitize_utf8("\xE5\x88z"), kFffd + "z");  // a truncated character is one subpart
  EXPECT_EQ(sanitize_utf8("a\xE4\xB8"), "a" + kFffd);  // cut short at the end
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98\x80!"), "\xF0\x9F\x98\x80!");
}

TEST(Utf8, CompletePrefixHoldsOnlyAWellFormedStart) {
  const std::string han = "\xE5\x88\x86";  // 分
  EXPECT_EQ(complete_utf8_prefix("ab"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a" + han.substr(0, 1)), 1u);
  EXPECT_EQ(complete_utf8_prefix("a" + han.substr(0, 2)), 1u);
  EXPECT_EQ(complete_utf8_prefix("a" + han), 4u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98"), 0u);  // 3 of 4 bytes of an emoji
  // Starts that can never become well-formed are not held: they are passed on and replaced.
  EXPECT_EQ(complete_utf8_prefix("a\xC0"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xF5"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a\xED\xA0"), 3u);
  EXPECT_EQ(complete_utf8_prefix("a\xE0\x80"), 3u);
}

}  // namespace

TEST(Utf8, DecodesOneCharacterOrNothing) {
  char32_t cp = 0;
  EXPECT_EQ(mmserve::decode_utf8_char("a", 0, cp), 1u);
  EXPECT_EQ(cp, U'a');
  EXPECT_EQ(mmserve::decode_utf8_char("x\xC3\xA9", 1, cp), 2u);  // é
  EXPECT_EQ(cp, U'\u00E9');
  EXPECT_EQ(mmserve::decode_utf8_char("\xEF\xBC\x90", 0, cp), 3u);  // full-width 0
  EXPECT_EQ(cp, U'\uFF10');
  EXPECT_EQ(mmserve::decode_utf8_char("\xF0\x9F\x98\x80", 0, cp), 4u);
  EXPECT_EQ(cp, U'\U0001F600');
  for (const char* bad : {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE4\xB8", "\x80"}) {
    EXPECT_EQ(mmserve::decode_utf8_char(bad, 0, cp), 0u) << bad;
  }
  EXPECT_EQ(mmserve::decode_utf8_char("a", 1, cp), 0u);  // past the end
}
