// Decoding an OpenAI-compatible endpoint's answers (executors/cloud/sse_decoder.h): server-sent
// events fed in chunks split anywhere, content deltas, finish_reason, usage, [DONE], the
// endpoint's error object, malformed data (an error event, never an exception), and the
// single JSON document of an endpoint that does not stream.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "executors/cloud/sse_decoder.h"

using namespace mmserve;
using executors::SseDecoder;
using executors::UpstreamEvent;
using Kind = UpstreamEvent::Kind;

namespace {

const std::string kStream =
    ": keep-alive comment\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}"
    "\r\n\r\n"
    "event: message\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u4f60\\u597d\"}}]}\r\r"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,"
    "\"total_tokens\":9}}\n\n"
    "data: [DONE]\n\n";

// What a whole stream decodes to, in one summary line per event.
std::string summary(const std::vector<UpstreamEvent>& events) {
  std::string out;
  for (const auto& e : events) {
    switch (e.kind) {
      case Kind::kDone: out += "[done]"; break;
      case Kind::kError: out += "[error]"; break;
      case Kind::kChunk:
        out += "[" + e.content + "|" + e.finish_reason;
        if (e.usage) {
          out += "|" + std::to_string(e.usage->prompt_tokens) + "," +
                 std::to_string(e.usage->completion_tokens);
        }
        out += "]";
        break;
    }
  }
  return out;
}

std::vector<UpstreamEvent> decode_in_pieces(const std::string& stream, size_t piece) {
  SseDecoder decoder;
  std::vector<UpstreamEvent> events;
  for (size_t i = 0; i < stream.size(); i += piece) {
    decoder.feed(std::string_view(stream).substr(i, piece), events);
  }
  decoder.finish(events);
  return events;
}

TEST(CloudSse, DecodesAStreamAlikeWhereverItsChunksAreSplit) {
  const std::string expected = "[|][Hel|][lo 你好|][|length][||7,2][done]";
  EXPECT_EQ(summary(decode_in_pieces(kStream, kStream.size())), expected);
  for (size_t piece = 1; piece <= 17; ++piece) {
    EXPECT_EQ(summary(decode_in_pieces(kStream, piece)), expected) << "pieces of " << piece;
  }
}

TEST(CloudSse, ACrLfSplitBetweenTwoChunksIsOneLineEnd) {
  SseDecoder decoder;
  std::vector<UpstreamEvent> events;
  decoder.feed("data: [DONE]\r", events);
  EXPECT_TRUE(events.empty());
  decoder.feed("\n\r", events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kDone);
  decoder.feed("\ndata: [DONE]\n", events);  // "\r\n" then one line: no blank line yet
  EXPECT_EQ(events.size(), 1u);
  decoder.feed("\n", events);
  EXPECT_EQ(events.size(), 2u);
}

TEST(CloudSse, JoinsTheDataLinesOfOneEvent) {
  SseDecoder decoder;
  std::vector<UpstreamEvent> events;
  decoder.feed("data: {\"choices\":\ndata:[{\"delta\":{\"content\":\"x\"}}]}\nid: 4\n\n", events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kChunk);
  EXPECT_EQ(events[0].content, "x");
}

TEST(CloudSse, FinishDecodesAnEventWithoutItsBlankLine) {
  SseDecoder decoder;
  std::vector<UpstreamEvent> events;
  decoder.feed("data: [DONE]", events);
  EXPECT_TRUE(events.empty());
  EXPECT_GT(decoder.buffered(), 0u);
  decoder.finish(events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kDone);
}

TEST(CloudSse, MalformedDataIsAnErrorEventNotAnException) {
  for (const std::string data :
       {R"({not json)", R"([1,2])", R"("text")", R"({"choices":{}})", R"({"choices":[7]})",
        R"({"choices":[{"delta":{"content":5}}]})", R"({"choices":[{"delta":[]}]})",
        R"({"choices":[{"finish_reason":3}]})", R"({"usage":{"prompt_tokens":"x"}})",
        R"({"usage":7})"}) {
    SseDecoder decoder;
    std::vector<UpstreamEvent> events;
    EXPECT_NO_THROW(decoder.feed("data: " + data + "\n\n", events)) << data;
    ASSERT_EQ(events.size(), 1u) << data;
    EXPECT_EQ(events[0].kind, Kind::kError) << data;
    EXPECT_FALSE(events[0].error.empty()) << data;
  }
}

TEST(CloudSse, TheEndpointsErrorObjectIsAnErrorWithItsMessage) {
  const auto e = executors::decode_sse_data(
      R"({"error":{"message":"The server had an error","type":"server_error","code":"overloaded"}})");
  EXPECT_EQ(e.kind, Kind::kError);
  EXPECT_NE(e.error.find("The server had an error"), std::string::npos) << e.error;
  EXPECT_NE(e.error.find("overloaded"), std::string::npos) << e.error;
  const auto plain = executors::decode_sse_data(R"({"error":"quota exceeded"})");
  EXPECT_EQ(plain.kind, Kind::kError);
  EXPECT_NE(plain.error.find("quota exceeded"), std::string::npos);
}

TEST(CloudSse, NullFieldsAreAbsentFields) {
  const auto e = executors::decode_sse_data(
      R"({"choices":[{"delta":{"content":null},"finish_reason":null}],"usage":null})");
  EXPECT_EQ(e.kind, Kind::kChunk);
  EXPECT_EQ(e.content, "");
  EXPECT_EQ(e.finish_reason, "");
  EXPECT_FALSE(e.usage);
}

TEST(CloudSse, AnEventOverTheLimitStopsTheStream) {
  SseDecoder decoder;
  std::vector<UpstreamEvent> events;
  const std::string big(executors::kMaxEventBytes / 4, 'a');
  decoder.feed("data: ", events);
  for (int i = 0; i < 5; ++i) {
    decoder.feed(big, events);
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::kError);
  decoder.feed("\n\ndata: [DONE]\n\n", events);  // nothing more is read
  decoder.finish(events);
  EXPECT_EQ(events.size(), 1u);
}

TEST(CloudSse, DecodesANonStreamedAnswer) {
  const auto e = executors::decode_json_answer(
      R"({"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2}})");
  EXPECT_EQ(e.kind, Kind::kChunk);
  EXPECT_EQ(e.content, "Hi there");
  EXPECT_EQ(e.finish_reason, "stop");
  ASSERT_TRUE(e.usage);
  EXPECT_EQ(e.usage->prompt_tokens, 4);
  EXPECT_EQ(e.usage->completion_tokens, 2);
  EXPECT_EQ(executors::decode_json_answer("<html>").kind, Kind::kError);
  EXPECT_EQ(executors::decode_json_answer(R"({"error":{"message":"bad key"}})").kind, Kind::kError);
}

}  // namespace
