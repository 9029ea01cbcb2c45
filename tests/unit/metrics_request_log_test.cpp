// The request log: X-Request-Id sanitising and generation, the JSON line (no prompt or output
// text unless capture is on), and the stderr sink that never blocks a request.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "http/log_sink.h"
#include "http/request_log.h"

using namespace mmserve::http;
using Json = nlohmann::json;

TEST(MetricsRequestLog, RequestIdKeepsSafeCharactersOnly) {
  EXPECT_EQ(sanitize_request_id("abc-123_X.y:z"), "abc-123_X.y:z");
  EXPECT_EQ(sanitize_request_id("a b\r\nInjected: 1"), "abInjected:1");
  EXPECT_EQ(sanitize_request_id("{\"json\"}<script>"), "jsonscript");
  EXPECT_EQ(sanitize_request_id("\xe6\x97\xa5\xe6\x9c\xac"), "");  // nothing usable left
  EXPECT_EQ(sanitize_request_id(""), "");
  EXPECT_EQ(sanitize_request_id(std::string(500, 'a')).size(), kMaxRequestIdLength);
}

TEST(MetricsRequestLog, GeneratedIdsAreUuid4AndUnique) {
  const std::regex uuid4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto id = generate_request_id();
    ASSERT_TRUE(std::regex_match(id, uuid4)) << id;
    EXPECT_EQ(sanitize_request_id(id), id);  // a generated id survives being sent back
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

namespace {

RequestLogEntry generation_entry() {
  RequestLogEntry e;
  e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  e.id = "req-1";
  e.method = "POST";
  e.path = "/v1/chat/completions";
  e.remote_addr = "127.0.0.1";
  e.status = 200;
  e.duration_ms = 12.34567;
  e.endpoint = "/v1/chat/completions";
  e.route = "local";
  e.task = "text-gen";
  RequestLogEntry::Generation g;
  g.response_id = "chatcmpl-1";
  g.stream = true;
  g.finish_reason = "length";
  g.queue_ms = 0.5;
  g.ttft_ms = 3.25;
  g.generate_ms = 8;
  g.prompt_tokens = 7;
  g.cached_prompt_tokens = 2;
  g.completion_tokens = 16;
  e.generation = g;
  return e;
}

}  // namespace

TEST(MetricsRequestLog, LineHasTheRequestFactsAndNoText) {
  const std::string line = format_log_line(generation_entry());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const Json j = Json::parse(line);
  EXPECT_EQ(j["ts"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "request");
  EXPECT_EQ(j["id"], "req-1");
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/v1/chat/completions");
  EXPECT_EQ(j["status"], 200);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 12.346);
  EXPECT_EQ(j["endpoint"], "/v1/chat/completions");
  EXPECT_EQ(j["route"], "local");
  EXPECT_EQ(j["task"], "text-gen");
  EXPECT_EQ(j["response_id"], "chatcmpl-1");
  EXPECT_EQ(j["stream"], true);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_DOUBLE_EQ(j["ttft_ms"].get<double>(), 3.25);
  EXPECT_EQ(j["prompt_tokens"], 7);
  EXPECT_EQ(j["cached_prompt_tokens"], 2);
  EXPECT_EQ(j["completion_tokens"], 16);
  EXPECT_FALSE(j.contains("request_body"));
  EXPECT_FALSE(j.contains("output"));
}

TEST(MetricsRequestLog, CaptureAddsTextAndSurvivesInvalidUtf8) {
  auto e = generation_entry();
  e.request_body = R"({"input":"secret prompt"})";
  e.output = "bad \xff byte";
  const Json j = Json::parse(format_log_line(e));
  EXPECT_EQ(j["request_body"], R"({"input":"secret prompt"})");
  EXPECT_EQ(j["output"], "bad \xef\xbf\xbd byte");  // U+FFFD
}

TEST(MetricsRequestLog, LevelFollowsTheOutcome) {
  RequestLogEntry e;
  e.status = 200;
  EXPECT_EQ(Json::parse(format_log_line(e))["level"], "info");
  e.status = 429;
  EXPECT_EQ(Json::parse(format_log_line(e))["level"], "warn");
  e.status = 503;
  EXPECT_EQ(Json::parse(format_log_line(e))["level"], "error");
  auto failed_stream = generation_entry();  // HTTP 200, but the generation timed out
  failed_stream.generation->finish_reason = "timeout";
  EXPECT_EQ(Json::parse(format_log_line(failed_stream))["level"], "error");
  // Not an inference request: no endpoint, route or task keys.
  EXPECT_FALSE(Json::parse(format_log_line(e)).contains("endpoint"));
}

TEST(MetricsRequestLog, SinkWritesWholeLinesInOrder) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    LogSink sink(fds[1], 100);
    for (int i = 0; i < 50; ++i) sink.write_line("line " + std::to_string(i));
    ASSERT_TRUE(sink.flush(std::chrono::seconds(30)));
    EXPECT_EQ(sink.dropped(), 0u);
  }
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) all.append(buf, n);
  ::close(fds[0]);
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(all, expected);
}

TEST(MetricsRequestLog, FullSinkDropsAndCountsInsteadOfBlocking) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  constexpr int kLines = 1000;
  const std::string payload(1000, 'x');  // 1000 lines of 1 KB: far over a 64 KiB pipe
  auto sink = std::make_unique<LogSink>(fds[1], 16);
  // Nobody reads the pipe yet: a blocking sink would hang this loop (and the test).
  for (int i = 0; i < kLines; ++i) sink->write_line(std::to_string(i) + " " + payload);
  const uint64_t dropped = sink->dropped();
  EXPECT_GT(dropped, 0u);  // at most a pipe's worth plus two queues' worth got through

  // Now drain the pipe: every line not counted as dropped arrives whole, in order.
  std::string all;
  std::thread reader([&] {
    char buf[65536];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) all.append(buf, n);
  });
  ASSERT_TRUE(sink->flush(std::chrono::seconds(30)));
  sink.reset();
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  int lines = 0;
  int last = -1;
  for (size_t pos = 0; pos < all.size();) {
    const size_t end = all.find('\n', pos);
    ASSERT_NE(end, std::string::npos);
    const std::string line = all.substr(pos, end - pos);
    const int index = std::stoi(line);
    EXPECT_GT(index, last);
    EXPECT_EQ(line, std::to_string(index) + " " + payload);
    last = index;
    ++lines;
    pos = end + 1;
  }
  EXPECT_EQ(static_cast<uint64_t>(lines) + dropped, static_cast<uint64_t>(kLines));
}
