#include "engine/text_stream.h"

#include <gtest/gtest.h>

using mmserve::engine::complete_utf8_prefix;
using mmserve::engine::is_valid_utf8;
using mmserve::engine::TextStream;

TEST(Utf8, CompletePrefixHoldsASplitCharacter) {
  const std::string han = "\xE5\x88\x86";  // 分
  EXPECT_EQ(complete_utf8_prefix("ab"), 2u);
  EXPECT_EQ(complete_utf8_prefix("a" + han.substr(0, 1)), 1u);
  EXPECT_EQ(complete_utf8_prefix("a" + han.substr(0, 2)), 1u);
  EXPECT_EQ(complete_utf8_prefix("a" + han), 4u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98"), 0u);  // 3 of 4 bytes of an emoji
}

TEST(Utf8, Validity) {
  EXPECT_TRUE(is_valid_utf8("plain \xE5\x88\x86\xE6\x9E\x90"));
  EXPECT_FALSE(is_valid_utf8("\xE5\x88"));
  EXPECT_FALSE(is_valid_utf8("\x80"));
}

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
  EXPECT_EQ(mmserve::engine::sanitize_utf8("a\x80z"), "a\xEF\xBF\xBDz");
  TextStream s;
  const std::string out = s.push("ok \xC3\x28 done");  // a lead byte followed by a non-continuation
  EXPECT_TRUE(is_valid_utf8(out)) << out;
  EXPECT_EQ(out, "ok \xEF\xBF\xBD( done");
}
