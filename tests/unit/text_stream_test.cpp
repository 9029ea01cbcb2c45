#include "engine/text_stream.h"

#include <gtest/gtest.h>

#include "core/utf8.h"

using mmserve::is_valid_utf8;
using mmserve::engine::TextStream;

TEST(TextStream, ByteFallbackPiecesAreJoinedBeforeEmission) {
  TextStream s;
  EXPECT_EQ(s.push("\xE5"), "");
  EXPECT_EQ(s.push("\x88"), "");
  EXPECT_EQ(s.push("\x86x"), "\xE5\x88\x86x");
  EXPECT_EQ(s.emitted(), "\xE5\x88\x86x");
}

TEST(TextStream, StopStringEndsTheTextBeforeIt) {
  TextStream s({"END"});
  EXPECT_EQ(s.push("hello E"), "hello ");  // "E" could start "END": held
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.push("N"), "");
  EXPECT_EQ(s.push("D and more"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.emitted(), "hello ");
}

TEST(TextStream, HeldTextIsReleasedWhenItCannotBeAStop) {
  TextStream s({"END"});
  EXPECT_EQ(s.push("EN"), "");
  EXPECT_EQ(s.push("x"), "ENx");
  EXPECT_EQ(s.flush(), "");
}

TEST(TextStream, FlushReturnsHeldTextAtTheEnd) {
  TextStream s({"###"});
  EXPECT_EQ(s.push("a#"), "a");
  EXPECT_EQ(s.flush(), "#");
  EXPECT_EQ(s.emitted(), "a#");
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
  TextStream s({"world", "lo"});
  EXPECT_EQ(s.push("hello world"), "hel");
  EXPECT_TRUE(s.stopped());
}

TEST(TextStream, InvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(mmserve::sanitize_utf8("a\x80z"), "a\xEF\xBF\xBDz");
  TextStream s;
  const std::string out = s.push("ok \xC3\x28 done");  // a lead byte followed by a non-continuation
  EXPECT_TRUE(is_valid_utf8(out)) << out;
  EXPECT_EQ(out, "ok \xEF\xBF\xBD( done");
}

// Finding 1 of the robustness issue: sampling at temperature 100 produces byte-fallback tokens
// that form overlong leads, out-of-range leads and surrogates; each used to pass through the
// stream and crash the strict JSON writer.
TEST(TextStream, IllFormedSequencesNeverLeaveTheStream) {
  for (const std::string bad :
       {"\xC0\x80", "\xC1\xBF", "\xF5\x80\x80\x80", "\xF7\xBF\xBF\xBF", "\xED\xA0\x80",
        "\xE0\x80\xAF", "\xF0\x80\x80\x80", "\xF4\x90\x80\x80", "\xFF", "\xFE"}) {
    TextStream s;
    std::string out;
    for (char c : bad) out += s.push(std::string(1, c));  // one byte per token, as byte fallback
    out += s.push("z");
    out += s.flush();
    EXPECT_TRUE(is_valid_utf8(out)) << testing::PrintToString(bad);
    EXPECT_EQ(out.back(), 'z');
    EXPECT_EQ(s.emitted(), out);
  }
}

TEST(TextStream, TruncatedCharacterAtTheEndIsDropped) {
  TextStream s;
  EXPECT_EQ(s.push("a\xE5\x88"), "a");
  EXPECT_EQ(s.flush(), "");
  EXPECT_EQ(s.emitted(), "a");
}
