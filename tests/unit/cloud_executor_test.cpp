// The cloud executor (executors/cloud/cloud_executor.h) against a fake OpenAI-compatible
// endpoint (cloud_fake_endpoint.h): a streamed answer arrives as sent and the request carries
// the mapped model and the messages; 5xx and 429 are retried, other 4xx not; a cloud that keeps
// failing, an open breaker or a call that must not leave fall back to the local executor (a
// fake) with their annotations, or fail with kUnavailable by policy. No test asserts on timing.
#include <gtest/gtest.h>

#include <thread>

#include "cloud_fake_endpoint.h"
#include "core/error.h"

using namespace cloud_test;

namespace {

TEST(CloudExecutor, AStreamedAnswerArrivesAsTheEndpointSentIt) {
  FakeCloud cloud(
      [](int, const httplib::Request&, httplib::Response& res) { stream(res, kHello); });
  FakeLocal local;
  executors::CloudExecutor executor(options_for(cloud), &local);
  EXPECT_EQ(executor.name(), "cloud");
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(s.model, "gpt-small");
  ASSERT_TRUE(s.generation);
  EXPECT_EQ(drain(*s.generation), "Hello world");
  const auto& o = s.generation->wait();
  ASSERT_TRUE(o.ok()) << o.error->what();
  EXPECT_EQ(o.result.text, "Hello world");
  EXPECT_EQ(o.result.reason, engine::FinishReason::kStop);
  EXPECT_EQ(o.result.prompt_tokens, 11);
  EXPECT_EQ(o.result.completion_tokens, 3);
  EXPECT_EQ(annotation(call, "upstream_status"), "200");
  EXPECT_EQ(annotation(call, "cloud_attempts"), "1");
  EXPECT_EQ(local.calls.load(), 0);

  ASSERT_EQ(cloud.requests(), 1);
  const auto body = cloud.body(0);
  EXPECT_EQ(body["model"], "gpt-small");
  EXPECT_EQ(body["messages"], Json::parse(R"([{"role":"system","content":"Be brief."},
                                              {"role":"user","content":"Say hello"}])"));
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["max_tokens"], 16);
  EXPECT_EQ(cloud.authorization(), "Bearer sk-test");
}

TEST(CloudExecutor, LengthAndMissingUsageAreReported) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) {
    stream(res, delta("a") + delta("b") + finish("length") + kDone);
  });
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  auto call = clean_call();
  call.model = "unmapped";
  const auto s = executor.submit(call);
  EXPECT_EQ(s.model, "upstream-default");
  drain(*s.generation);
  const auto& o = s.generation->wait();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o.result.reason, engine::FinishReason::kLength);
  EXPECT_EQ(o.result.completion_tokens, 2);  // no usage: one per delta
  EXPECT_EQ(cloud.body(0)["model"], "upstream-default");
}

TEST(CloudExecutor, ANonStreamedAnswerIsTakenWhole) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"message":{"role":"assistant","content":"whole"},
                        "finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1}})",
                    "application/json");
  });
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(drain(*s.generation), "whole");
  const auto& o = s.generation->wait();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o.result.completion_tokens, 1);
}

TEST(CloudExecutor, A500IsRetriedAndTheRetrySucceeds) {
  FakeCloud cloud([](int index, const httplib::Request&, httplib::Response& res) {
    index == 0 ? fail(res, 500) : stream(res, kHello);
  });
  FakeLocal local;
  executors::CloudExecutor executor(options_for(cloud), &local);
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(drain(*s.generation), "Hello world");
  EXPECT_TRUE(s.generation->wait().ok());
  EXPECT_EQ(cloud.requests(), 2);
  EXPECT_EQ(annotation(call, "cloud_attempts"), "2");
  EXPECT_EQ(annotation(call, "upstream_status"), "200");
  EXPECT_EQ(cloud.body(1), cloud.body(0));  // the same request again
  EXPECT_EQ(local.calls.load(), 0);
}

TEST(CloudExecutor, A429WithRetryAfterIsRetried) {
  FakeCloud cloud([](int index, const httplib::Request&, httplib::Response& res) {
    if (index == 0) {
      fail(res, 429);
      res.set_header("Retry-After", "1");  // capped by max_backoff (20 ms here)
    } else {
      stream(res, kHello);
    }
  });
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(drain(*s.generation), "Hello world");
  EXPECT_EQ(cloud.requests(), 2);
  EXPECT_EQ(annotation(call, "cloud_attempts"), "2");
}

TEST(CloudExecutor, ACloudThatKeepsFailingFallsBackToLocal) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) { fail(res, 503); });
  FakeLocal local;
  executors::CloudExecutor executor(options_for(cloud), &local);
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(cloud.requests(), 3);  // the first attempt and 2 retries
  EXPECT_EQ(local.calls.load(), 1);
  EXPECT_EQ(s.model, "local-model");
  EXPECT_EQ(drain(*s.generation), "local answer");
  EXPECT_EQ(call.executor, "local");
  EXPECT_EQ(annotation(call, "route"), "local");
  EXPECT_EQ(annotation(call, "route_reason"), "cloud_failed");
  EXPECT_EQ(annotation(call, "upstream_status"), "503");
  EXPECT_EQ(annotation(call, "cloud_attempts"), "3");
  // The local executor got the call whole.
  std::lock_guard lock(local.mutex);
  EXPECT_EQ(local.last.generation.max_tokens, 16);
  EXPECT_EQ(local.last.executor, "local");
}

TEST(CloudExecutor, AnotherClientErrorIsNotRetried) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) { fail(res, 400); });
  FakeLocal local;
  executors::CloudExecutor executor(options_for(cloud), &local);
  auto call = clean_call();
  executor.submit(call);
  EXPECT_EQ(cloud.requests(), 1);
  EXPECT_EQ(local.calls.load(), 1);
  EXPECT_EQ(annotation(call, "upstream_status"), "400");
}

TEST(CloudExecutor, WithoutFallbackAFailedCloudIsUnavailable) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) { fail(res, 500); });
  FakeLocal local;
  auto o = options_for(cloud);
  o.fallback_local = false;
  o.retries = 0;
  for (const pipeline::Executor* fallback : {static_cast<const pipeline::Executor*>(&local),
                                             static_cast<const pipeline::Executor*>(nullptr)}) {
    if (fallback == nullptr) {
      o.fallback_local = true;  // no executor to fall back to: the same answer
    }
    executors::CloudExecutor executor(o, fallback);
    auto call = clean_call();
    try {
      executor.submit(call);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
      EXPECT_NE(std::string(e.what()).find("HTTP 500"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("upstream says no"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(local.calls.load(), 0);
}

TEST(CloudExecutor, FailuresOpenTheBreakerAndATrialAfterTheCooldownClosesIt) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) { fail(res, 500); });
  FakeLocal local;
  auto o = options_for(cloud);
  o.retries = 0;
  o.breaker_failures = 2;
  o.breaker_cooldown = 100ms;
  executors::CloudExecutor executor(o, &local);
  for (int i = 0; i < 2; ++i) {
    auto call = clean_call();
    executor.submit(call);
    EXPECT_EQ(annotation(call, "route_reason"), "cloud_failed");
  }
  EXPECT_EQ(executor.breaker_state(), executors::CircuitBreaker::State::kOpen);
  auto refused = clean_call();
  executor.submit(refused);
  EXPECT_EQ(cloud.requests(), 2);  // never contacted
  EXPECT_EQ(annotation(refused, "route_reason"), "breaker_open");
  EXPECT_EQ(annotation(refused, "route"), "local");
  EXPECT_EQ(annotation(refused, "upstream_status"), "none");
  EXPECT_EQ(local.calls.load(), 3);

  cloud.set_answer(
      [](int, const httplib::Request&, httplib::Response& res) { stream(res, kHello); });
  std::this_thread::sleep_for(150ms);  // past the cooldown (at least; never asserted as a bound)
  auto trial = clean_call();
  const auto s = executor.submit(trial);
  EXPECT_EQ(drain(*s.generation), "Hello world");
  EXPECT_EQ(executor.breaker_state(), executors::CircuitBreaker::State::kClosed);
  EXPECT_EQ(cloud.requests(), 3);
  auto after = clean_call();
  drain(*executor.submit(after).generation);
  EXPECT_EQ(cloud.requests(), 4);
  EXPECT_EQ(local.calls.load(), 3);
}

TEST(CloudExecutor, ACallThatMustNotLeaveIsNeverSent) {
  FakeCloud cloud(
      [](int, const httplib::Request&, httplib::Response& res) { stream(res, kHello); });
  FakeLocal local;
  executors::CloudExecutor executor(options_for(cloud), &local);
  std::vector<std::function<void(pipeline::Call&)>> spoilers = {
      [](pipeline::Call& c) { c.annotate("privacy", "findings", "cn_mobile:1"); },
      [](pipeline::Call& c) { c.annotations.clear(); },  // never scanned
      [](pipeline::Call& c) { c.annotate("privacy", "scan_error", "detector failed"); },
      [](pipeline::Call& c) { c.text.messages[1].parts.push_back({.is_image = true}); },
      [](pipeline::Call& c) { c.task = runtime::Task::kImageCaption; },
      [](pipeline::Call& c) { c.audio.emplace(); },
      [](pipeline::Call& c) { c.data_class = pipeline::DataClass::kPersonal; },
      [](pipeline::Call& c) { c.data_class = pipeline::DataClass::kConfidential; },
  };
  for (size_t i = 0; i < spoilers.size(); ++i) {
    auto call = clean_call();
    spoilers[i](call);
    EXPECT_FALSE(executors::CloudExecutor::ineligibility(call).empty()) << i;
    const auto s = executor.submit(call);
    EXPECT_EQ(s.model, "local-model") << i;
    EXPECT_EQ(annotation(call, "route"), "local") << i;
    EXPECT_EQ(annotation(call, "route_reason"), "not_eligible") << i;
    EXPECT_EQ(call.executor, "local") << i;
  }
  EXPECT_EQ(cloud.requests(), 0);
  EXPECT_EQ(local.calls.load(), static_cast<int>(spoilers.size()));
  EXPECT_TRUE(executors::CloudExecutor::ineligibility(clean_call()).empty());
}

// An answer that sends a delta every 10 ms until the client closes the connection (httplib then
// stops calling the provider and releases it unsuccessfully); then notes it.
TEST(CloudExecutor, ALongPromptIsSentWhole) {
  // Over 1 KiB, httplib sends "Expect: 100-continue" and the body after the interim answer.
  FakeCloud cloud(
      [](int, const httplib::Request&, httplib::Response& res) { stream(res, kHello); });
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  auto call = clean_call();
  const std::string prompt(100000, 'p');
  call.text.messages[1].parts = {{.value = prompt}};
  drain(*executor.submit(call).generation);
  ASSERT_EQ(cloud.requests(), 1);
  EXPECT_EQ(cloud.body(0)["messages"][1]["content"], prompt);
}

TEST(CloudExecutor, ACallThatMustNotLeaveRunsLocallyEvenWithoutCloudFallback) {
  FakeCloud cloud(
      [](int, const httplib::Request&, httplib::Response& res) { stream(res, kHello); });
  FakeLocal local;
  auto o = options_for(cloud);
  o.fallback_local = false;  // about cloud failures, not about privacy
  executors::CloudExecutor executor(o, &local);
  auto call = clean_call();
  call.annotate("privacy", "findings", "email:2");
  EXPECT_EQ(executor.submit(call).model, "local-model");
  EXPECT_EQ(annotation(call, "route_reason"), "not_eligible");
  EXPECT_EQ(cloud.requests(), 0);
  executors::CloudExecutor alone(o, nullptr);
  auto again = clean_call();
  again.annotate("privacy", "findings", "email:2");
  try {
    alone.submit(again);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  EXPECT_EQ(cloud.requests(), 0);
}

TEST(CloudExecutor, ABadBaseUrlIsRefusedAtConstruction) {
  executors::CloudOptions o;
  o.base_url = "api.openai.com/v1";
  try {
    executors::CloudExecutor executor(o, nullptr);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
  }
}

}  // namespace
