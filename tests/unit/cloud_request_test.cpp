// What the cloud executor sends and when it sends it again: the upstream chat-completions body
// built from a call (executors/cloud/upstream_request.h), the base URL taken apart
// (cloud_options.h), and the retry policy: outcomes, what is retried, Retry-After, backoff with
// jitter and its cap (retry_policy.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "executors/cloud/retry_policy.h"
#include "executors/cloud/upstream_request.h"

using namespace mmserve;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

pipeline::Call chat_call() {
  pipeline::Call call;
  call.model = "small";
  call.text.style = pipeline::PromptStyle::kChat;
  call.text.messages = {
      {.role = "system", .parts = {{.value = "Be brief."}}},
      {.role = "user",
       .parts = {{.value = "Describe "}, {.is_image = true, .value = "data:..."}, {.value = "it"}}},
  };
  call.generation.max_tokens = 32;
  call.generation.sampling.temperature = 0.8f;
  call.generation.sampling.top_p = 0.95f;
  call.generation.sampling.seed = 42;
  call.generation.stop = {"\n\n", "END"};
  return call;
}

TEST(CloudRequest, AChatCallBecomesAStreamedChatCompletionsBody) {
  const auto call = chat_call();
  const Json body = executors::upstream_body(call, "gpt-4o-mini");
  EXPECT_EQ(body["model"], "gpt-4o-mini");
  EXPECT_EQ(body["messages"], Json::parse(R"([{"role":"system","content":"Be brief."},
                                              {"role":"user","content":"Describe it"}])"));
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"], Json::parse(R"({"include_usage":true})"));
  EXPECT_EQ(body["max_tokens"], 32);
  EXPECT_EQ(body["temperature"].dump(), "0.8");
  EXPECT_EQ(body["top_p"].dump(), "0.95");
  EXPECT_EQ(body["seed"], 42);
  EXPECT_EQ(body["stop"], Json::parse(R"(["\n\n","END"])"));
  // The call is untouched: a fallback to the local executor needs it whole.
  EXPECT_EQ(call.generation.stop.size(), 2u);
  EXPECT_EQ(call.generation.max_tokens, 32);
}

TEST(CloudRequest, InstructAndRawPromptsAreUserMessages) {
  pipeline::Call call;
  call.text.style = pipeline::PromptStyle::kInstruct;
  call.text.prompt = "分析市场趋势";
  call.text.system = "You are an analyst.";
  EXPECT_EQ(executors::upstream_body(call, "m")["messages"],
            Json::parse(R"([{"role":"system","content":"You are an analyst."},
                            {"role":"user","content":"分析市场趋势"}])"));
  call.text.system.reset();
  EXPECT_EQ(executors::upstream_body(call, "m")["messages"],
            Json::parse(R"([{"role":"user","content":"分析市场趋势"}])"));
  call.text.style = pipeline::PromptStyle::kRaw;
  call.text.system = "ignored for raw";
  EXPECT_EQ(executors::upstream_body(call, "m")["messages"],
            Json::parse(R"([{"role":"user","content":"分析市场趋势"}])"));
}

TEST(CloudRequest, OptionalFieldsAreLeftOutWhenNotGiven) {
  pipeline::Call call;
  call.text.prompt = "hi";
  call.generation.max_tokens = 0;  // not given
  const Json body = executors::upstream_body(call, "m");
  EXPECT_FALSE(body.contains("max_tokens"));
  EXPECT_FALSE(body.contains("seed"));  // 0xFFFFFFFF: random
  EXPECT_FALSE(body.contains("stop"));
  call.text.default_max_tokens = 16;  // /v1/completions' default
  EXPECT_EQ(executors::upstream_body(call, "m")["max_tokens"], 16);
  call.generation.max_tokens = 5;
  EXPECT_EQ(executors::upstream_body(call, "m")["max_tokens"], 5);
}

TEST(CloudRequest, TheUpstreamModelIsMappedThenDefaultedThenPassedThrough) {
  executors::CloudOptions options;
  options.model_map = {{"small", "gpt-4o-mini"}, {"", "for-the-default"}};
  pipeline::Call call;
  call.model = "small";
  EXPECT_EQ(executors::upstream_model(call, options), "gpt-4o-mini");
  call.model = "";
  EXPECT_EQ(executors::upstream_model(call, options), "for-the-default");
  call.model = "other";
  EXPECT_EQ(executors::upstream_model(call, options), "other");
  options.default_model = "gpt-4.1";
  EXPECT_EQ(executors::upstream_model(call, options), "gpt-4.1");
  options = {};
  call.model = "";
  EXPECT_EQ(executors::upstream_model(call, options), "");
}

TEST(CloudRequest, TheBaseUrlIsSplitIntoOriginAndPath) {
  auto e = executors::parse_endpoint("https://api.openai.com/v1");
  EXPECT_EQ(e.origin, "https://api.openai.com");
  EXPECT_EQ(e.chat_path(), "/v1/chat/completions");
  e = executors::parse_endpoint("http://127.0.0.1:9000/v1/");
  EXPECT_EQ(e.origin, "http://127.0.0.1:9000");
  EXPECT_EQ(e.chat_path(), "/v1/chat/completions");
  e = executors::parse_endpoint("http://localhost:8080");
  EXPECT_EQ(e.origin, "http://localhost:8080");
  EXPECT_EQ(e.chat_path(), "/chat/completions");
  for (const char* bad : {"", "api.openai.com/v1", "ftp://host/v1", "http:///v1",
                          "http://user@host/v1", "http://host?x=1"}) {
    try {
      executors::parse_endpoint(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << bad;
    }
  }
}

TEST(CloudRetry, StatusesBecomeOutcomesAndOnlySomeAreRetried) {
  EXPECT_STREQ(executors::outcome_of_status(200), "ok");
  EXPECT_STREQ(executors::outcome_of_status(429), "http_429");
  EXPECT_STREQ(executors::outcome_of_status(401), "http_4xx");
  EXPECT_STREQ(executors::outcome_of_status(503), "http_5xx");
  EXPECT_STREQ(executors::outcome_of_status(302), "bad_response");
  for (const char* yes : {"http_429", "http_5xx", "connect_error", "timeout"}) {
    EXPECT_TRUE(executors::retryable(yes)) << yes;
  }
  for (const char* no : {"ok", "http_4xx", "bad_response"}) {
    EXPECT_FALSE(executors::retryable(no)) << no;
  }
}

TEST(CloudRetry, RetryAfterIsReadInItsSecondsForm) {
  EXPECT_EQ(executors::parse_retry_after("3"), 3s);
  EXPECT_EQ(executors::parse_retry_after(" 0 "), 0s);
  EXPECT_EQ(executors::parse_retry_after("99999999"), 86400s);
  for (const char* no : {"", "-1", "1.5", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"}) {
    EXPECT_FALSE(executors::parse_retry_after(no)) << no;
  }
}

TEST(CloudRetry, BackoffDoublesWithJitterUpToItsCap) {
  executors::CloudOptions o;
  o.backoff = 200ms;
  o.max_backoff = 1000ms;
  EXPECT_EQ(executors::retry_delay(o, 1, std::nullopt, 0.0), 100ms);  // jitter: 50% to 100%
  EXPECT_EQ(executors::retry_delay(o, 1, std::nullopt, 1.0), 200ms);
  EXPECT_EQ(executors::retry_delay(o, 2, std::nullopt, 1.0), 400ms);
  EXPECT_EQ(executors::retry_delay(o, 3, std::nullopt, 1.0), 800ms);
  EXPECT_EQ(executors::retry_delay(o, 4, std::nullopt, 1.0), 1000ms);
  EXPECT_EQ(executors::retry_delay(o, 40, std::nullopt, 0.5), 750ms);
  for (int i = 0; i < 8; ++i) {
    const auto d = executors::retry_delay(o, 2, std::nullopt, i / 8.0);
    EXPECT_GE(d, 200ms);
    EXPECT_LE(d, 400ms);
  }
}

TEST(CloudRetry, RetryAfterIsHonouredWithinTheCap) {
  executors::CloudOptions o;
  o.backoff = 100ms;
  o.max_backoff = 5000ms;
  EXPECT_EQ(executors::retry_delay(o, 1, 2s, 0.0), 2000ms);
  EXPECT_EQ(executors::retry_delay(o, 1, 60s, 0.0), 5000ms);  // capped
  EXPECT_EQ(executors::retry_delay(o, 1, 0s, 1.0), 100ms);    // never shorter than the backoff
}

}  // namespace
