// The HTTP layer's stream invariant (http/streaming.h): whatever fails while a stream is being
// written, no exception leaves the content provider; the stream ends with one error event in
// the API's error shape and never reports a normal finish.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "http/streaming.h"

using namespace mmserve;
using namespace std::chrono_literals;

namespace {

struct Drained {
  std::string bytes;
  bool done = false;
};

struct RecordingSink : http::ChunkSink {
  Drained& d;
  explicit RecordingSink(Drained& drained) : d(drained) {}
  bool write(std::string_view bytes) override {
    d.bytes.append(bytes);
    return true;
  }
  void done() override { d.done = true; }
};

// Drives the response's stream writer as the server does, until it is done or refuses.
Drained drain(http::ApiResponse& res) {
  Drained d;
  RecordingSink sink(d);
  EXPECT_EQ(res.content_type, "text/event-stream");
  for (int calls = 0; calls < 100 && !d.done; ++calls) {
    bool more = false;
    EXPECT_NO_THROW(more = res.stream(sink));
    if (!more) break;
  }
  return d;
}

http::StreamFormat format_with(std::function<std::string(std::string_view)> piece) {
  return {.opening = nullptr,
          .piece = std::move(piece),
          .closing = [](const scheduler::GenerationOutcome&) {
            return http::sse_event(nlohmann::json{{"finish_reason", "stop"}}) + http::sse_done();
          }};
}

TEST(HttpStreaming, AnExceptionWhileFormattingBecomesOneErrorEvent) {
  auto generation =
      std::make_shared<scheduler::Generation>(scheduler::Generation::Clock::now() + 1h);
  generation->push_text("hello");
  http::ApiResponse res;
  http::stream_generation(res, generation, format_with([](std::string_view) -> std::string {
                            throw nlohmann::json::type_error::create(316, "invalid UTF-8", nullptr);
                          }));
  const Drained d = drain(res);
  EXPECT_TRUE(d.done);
  EXPECT_TRUE(generation->cancel_requested());  // the work stops with the stream
  EXPECT_EQ(d.bytes.find("[DONE]"), std::string::npos);
  EXPECT_EQ(d.bytes.find("finish_reason"), std::string::npos);
  ASSERT_TRUE(d.bytes.starts_with("data: "));
  const auto event = nlohmann::json::parse(d.bytes.substr(6));
  EXPECT_EQ(event["error"]["type"], "internal_error");
  EXPECT_EQ(event["error"]["code"], 500);
}

TEST(HttpStreaming, AFailedGenerationEndsWithItsTypedErrorNotAFinish) {
  auto generation =
      std::make_shared<scheduler::Generation>(scheduler::Generation::Clock::now() + 1h);
  scheduler::GenerationOutcome outcome;
  outcome.result.reason = engine::FinishReason::kCancelled;
  outcome.error = Error(ErrorCode::kTimeout, "the request ran past its deadline");
  generation->push_text("partial ");
  generation->finish(outcome);
  http::ApiResponse res;
  http::stream_generation(res, generation, format_with([](std::string_view t) {
                            return http::sse_event(nlohmann::json{{"text", t}});
                          }));
  const Drained d = drain(res);
  EXPECT_TRUE(d.done);
  EXPECT_NE(d.bytes.find(R"({"text":"partial "})"), std::string::npos);
  EXPECT_EQ(d.bytes.find("[DONE]"), std::string::npos);
  EXPECT_EQ(d.bytes.find("finish_reason"), std::string::npos);
  const auto last = d.bytes.substr(d.bytes.rfind("data: ") + 6);
  const auto event = nlohmann::json::parse(last);
  EXPECT_EQ(event["error"]["type"], "timeout");
  EXPECT_EQ(event["error"]["code"], 504);
}

TEST(HttpStreaming, InvalidUtf8InAPieceIsReplacedNotThrown) {
  auto generation =
      std::make_shared<scheduler::Generation>(scheduler::Generation::Clock::now() + 1h);
  generation->push_text("\xC0\xAF");
  generation->finish({});
  http::ApiResponse res;
  http::stream_generation(res, generation, format_with([](std::string_view t) {
                            return http::sse_event(nlohmann::json{{"text", std::string(t)}});
                          }));
  const Drained d = drain(res);
  EXPECT_TRUE(d.done);
  EXPECT_NE(d.bytes.find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_TRUE(d.bytes.ends_with("data: [DONE]\n\n"));
}

}  // namespace
