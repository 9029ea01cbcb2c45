// Transcript renderings: SRT, WebVTT, text and OpenAI's JSON shapes.
#include "engine/speech_transcript.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/speech_state.h"

namespace mmserve::engine {
namespace {

Transcript sample() {
  Transcript t;
  t.language = "en";
  t.duration = 3725.5;
  SpeechSegment a;
  a.start = 0.0;
  a.end = 2.27;
  a.text = " And so my fellow Americans,";
  a.tokens = {400, 370, 452};
  a.words = {{" And", 0.0, 0.3, 0.9}, {" so", 0.3, 0.6, 0.8}};
  SpeechSegment empty;
  empty.start = 2.3;
  empty.end = 2.4;
  empty.text = "  ";
  SpeechSegment b;
  b.start = 3723.004;
  b.end = 3725.5;
  b.text = " ask <not> what\nyour country & --> you";
  b.seek = 372000;
  t.segments = {a, empty, b};
  return t;
}

TEST(SpeechTranscript, CueTimes) {
  EXPECT_EQ(cue_time(0, ','), "00:00:00,000");
  EXPECT_EQ(cue_time(3723.004, ','), "01:02:03,004");
  EXPECT_EQ(cue_time(59.9996, '.'), "00:01:00.000");
  EXPECT_EQ(cue_time(-1, '.'), "00:00:00.000");
}

TEST(SpeechTranscript, SrtNumbersCuesAndSkipsEmptyOnes) {
  EXPECT_EQ(render_transcript(sample(), TranscriptFormat::kSrt),
            "1\n00:00:00,000 --> 00:00:02,270\nAnd so my fellow Americans,\n\n"
            "2\n01:02:03,004 --> 01:02:05,500\nask <not> what your country & --> you\n\n");
}

TEST(SpeechTranscript, VttHasItsHeaderAndEscapesMarkup) {
  EXPECT_EQ(render_transcript(sample(), TranscriptFormat::kVtt),
            "WEBVTT\n\n"
            "00:00:00.000 --> 00:00:02.270\nAnd so my fellow Americans,\n\n"
            "01:02:03.004 --> 01:02:05.500\n"
            "ask &lt;not&gt; what your country &amp; --&gt; you\n\n");
}

TEST(SpeechTranscript, TextAndJson) {
  const auto t = sample();
  EXPECT_EQ(t.text(), "And so my fellow Americans,   ask <not> what\nyour country & --> you");
  EXPECT_EQ(render_transcript(t, TranscriptFormat::kText), t.text() + "\n");
  const auto j = nlohmann::json::parse(render_transcript(t, TranscriptFormat::kJson));
  EXPECT_EQ(j, (nlohmann::json{{"text", t.text()}}));
}

TEST(SpeechTranscript, VerboseJsonHasOpenAisFields) {
  const auto j =
      nlohmann::json::parse(render_transcript(sample(), TranscriptFormat::kVerboseJson, true));
  EXPECT_EQ(j["task"], "transcribe");
  EXPECT_EQ(j["language"], "english");
  EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 3725.5);
  ASSERT_EQ(j["segments"].size(), 3u);
  const auto& s = j["segments"][2];
  for (const char* key : {"id", "seek", "start", "end", "text", "tokens", "temperature",
                          "avg_logprob", "compression_ratio", "no_speech_prob"}) {
    EXPECT_TRUE(s.contains(key)) << key;
  }
  EXPECT_EQ(s["id"], 2);
  EXPECT_EQ(s["seek"], 372000);
  EXPECT_DOUBLE_EQ(s["start"].get<double>(), 3723.004);
  EXPECT_GT(s["compression_ratio"].get<double>(), 0.0);
  EXPECT_EQ(j["segments"][0]["tokens"], nlohmann::json({400, 370, 452}));
  ASSERT_EQ(j["words"].size(), 2u);
  EXPECT_EQ(j["words"][0], (nlohmann::json{{"word", "And"}, {"start", 0.0}, {"end", 0.3}}));
  // Without word granularity there is no "words" list.
  EXPECT_FALSE(nlohmann::json::parse(render_transcript(sample(), TranscriptFormat::kVerboseJson))
                   .contains("words"));
}

TEST(SpeechTranscript, FormatNames) {
  EXPECT_EQ(parse_transcript_format("srt", "f"), TranscriptFormat::kSrt);
  EXPECT_EQ(parse_transcript_format("txt", "f"), TranscriptFormat::kText);
  EXPECT_EQ(parse_transcript_format("verbose_json", "f"), TranscriptFormat::kVerboseJson);
  try {
    parse_transcript_format("docx", "response_format");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "response_format");
    EXPECT_NE(std::string(e.what()).find("verbose_json"), std::string::npos);
  }
}

// Streamed deltas concatenated are the whole text, whatever whitespace the segments carry.
TEST(SpeechTranscript, DeltasAddUpToTheText) {
  const std::vector<std::vector<std::string>> cases = {
      {" Hello", " world.", " Bye "},
      {"  ", "\n", " first", "   ", " second\n", " "},
      {"", "a", "b", " c"},
      {"   "},
      {},
  };
  for (const auto& texts : cases) {
    Transcript t;
    TranscriptDeltas deltas;
    std::string sent;
    for (const auto& text : texts) {
      SpeechSegment s;
      s.text = text;
      t.segments.push_back(s);
      sent += deltas.next(s);
      EXPECT_EQ(t.text().substr(0, sent.size()), sent);  // never ahead of the text
    }
    EXPECT_EQ(sent, t.text());
  }
}

}  // namespace
}  // namespace mmserve::engine
