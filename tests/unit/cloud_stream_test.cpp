// How a call the cloud executor sent upstream ends (executors/cloud/cloud_executor.h), against
// the fake endpoint of cloud_fake_endpoint.h: a connection dropped or an error event
// mid-answer (kUnavailable), a client that goes away (kCancelled: the upstream read is
// aborted, even while the endpoint is silent), the deadline (kTimeout), headers slower than
// the read timeout and an endpoint that is not there (fallback with their status), the
// executor destroyed under a streaming call, and many calls at once. No test asserts on timing.
#include <gtest/gtest.h>

#include <thread>

#include "cloud_fake_endpoint.h"
#include "core/error.h"

using namespace cloud_test;

namespace {

TEST(CloudStream, AConnectionClosedMidStreamEndsTheCallUnavailable) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
      const auto first = delta("partial");
      sink.write(first.data(), first.size());
      return false;  // drops the connection, no final chunk
    });
  });
  FakeLocal local;
  executors::CloudExecutor executor(options_for(cloud), &local);
  auto call = clean_call();
  const auto s = executor.submit(call);
  drain(*s.generation);
  const auto& o = s.generation->wait();
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error->code(), ErrorCode::kUnavailable);
  EXPECT_NE(std::string(o.error->what()).find("mid-answer"), std::string::npos);
  EXPECT_EQ(o.result.reason, engine::FinishReason::kError);
  EXPECT_EQ(local.calls.load(), 0);  // it had begun: no fallback once text may be out
  EXPECT_EQ(cloud.requests(), 1);
}

TEST(CloudStream, AnErrorEventMidStreamEndsTheCallUnavailable) {
  FakeCloud cloud([](int, const httplib::Request&, httplib::Response& res) {
    stream(res, delta("a") + sse({{"error", {{"message", "overloaded"}}}}));
  });
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(drain(*s.generation), "a");
  const auto& o = s.generation->wait();
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error->code(), ErrorCode::kUnavailable);
  EXPECT_NE(std::string(o.error->what()).find("overloaded"), std::string::npos);
}

void endless(FakeCloud& cloud, httplib::Response& res) {
  res.set_chunked_content_provider(
      "text/event-stream",
      [&cloud](size_t, httplib::DataSink& sink) {
        const auto piece = delta("x");
        if (!sink.write(piece.data(), piece.size())) {
          return false;
        }
        if (cloud.hold(10ms)) {
          sink.done();  // the test is over
        }
        return true;
      },
      [&cloud](bool success) {
        if (!success) {
          cloud.saw_close.store(true);
        }
      });
}

TEST(CloudStream, CancellingMidStreamAbortsTheUpstreamRead) {
  FakeCloud* fake = nullptr;
  FakeCloud cloud(
      [&fake](int, const httplib::Request&, httplib::Response& res) { endless(*fake, res); });
  fake = &cloud;
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  auto call = clean_call();
  const auto s = executor.submit(call);
  bool finished = false;
  while (s.generation->take_text(50ms, finished).empty() && !finished) {
  }
  s.generation->cancel();  // the client went away
  const auto& o = s.generation->wait();
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error->code(), ErrorCode::kCancelled);
  EXPECT_EQ(o.result.reason, engine::FinishReason::kCancelled);
  for (int i = 0; i < 500 && !cloud.saw_close.load(); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(cloud.saw_close.load());
}

// An answer that sends one delta, then nothing until the test ends.
void silent_after_one(FakeCloud& cloud, httplib::Response& res) {
  res.set_chunked_content_provider("text/event-stream", [&cloud](size_t, httplib::DataSink& sink) {
    const auto piece = delta("first");
    sink.write(piece.data(), piece.size());
    cloud.hold(10s);
    sink.done();
    return true;
  });
}

TEST(CloudStream, ACancelledCallIsAbortedEvenWhileTheEndpointIsSilent) {
  FakeCloud* fake = nullptr;
  FakeCloud cloud([&fake](int, const httplib::Request&, httplib::Response& res) {
    silent_after_one(*fake, res);
  });
  fake = &cloud;
  auto o = options_for(cloud);
  o.read_timeout = 60s;  // only the supervisor can end it
  executors::CloudExecutor executor(o, nullptr);
  auto call = clean_call();
  const auto s = executor.submit(call);
  bool finished = false;
  EXPECT_EQ(s.generation->take_text(5s, finished), "first");
  s.generation->cancel();
  const auto& outcome = s.generation->wait();
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error->code(), ErrorCode::kCancelled);
}

TEST(CloudStream, PastItsDeadlineACallEndsWithTimeout) {
  FakeCloud* fake = nullptr;
  FakeCloud cloud([&fake](int, const httplib::Request&, httplib::Response& res) {
    silent_after_one(*fake, res);
  });
  fake = &cloud;
  auto o = options_for(cloud);
  o.read_timeout = 60s;
  executors::CloudExecutor executor(o, nullptr);
  auto call = clean_call();
  call.deadline = pipeline::Clock::now() + 1s;
  // On a loaded (sanitizer) box the deadline may pass before the headers: then submit() says
  // so. Either way the call ends with kTimeout, never hanging on the silent endpoint.
  pipeline::Submission s;
  try {
    s = executor.submit(call);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout) << e.what();
    return;
  }
  EXPECT_EQ(s.generation->deadline(), call.deadline);
  drain(*s.generation);
  const auto& outcome = s.generation->wait();
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error->code(), ErrorCode::kTimeout);
}

TEST(CloudStream, HeadersSlowerThanTheReadTimeoutAreATimeout) {
  FakeCloud* fake = nullptr;
  FakeCloud cloud([&fake](int, const httplib::Request&, httplib::Response& res) {
    fake->hold(2s);
    stream(res, kHello);
  });
  fake = &cloud;
  FakeLocal local;
  auto o = options_for(cloud);
  o.read_timeout = 200ms;
  o.retries = 0;
  executors::CloudExecutor executor(o, &local);
  auto call = clean_call();
  const auto s = executor.submit(call);
  EXPECT_EQ(s.model, "local-model");
  EXPECT_EQ(annotation(call, "route_reason"), "cloud_failed");
  EXPECT_EQ(annotation(call, "upstream_status"), "timeout");
  cloud.release();
}

TEST(CloudStream, AnEndpointThatIsNotThereIsAConnectError) {
  std::string url;
  {
    FakeCloud gone([](int, const httplib::Request&, httplib::Response&) {});
    url = gone.base_url();
  }
  FakeLocal local;
  executors::CloudOptions o;
  o.base_url = url;
  o.default_model = "m";
  o.retries = 1;
  o.backoff = 1ms;
  o.connect_timeout = 500ms;
  executors::CloudExecutor executor(o, &local);
  auto call = clean_call();
  executor.submit(call);
  EXPECT_EQ(local.calls.load(), 1);
  EXPECT_EQ(annotation(call, "upstream_status"), "connect_error");
  EXPECT_EQ(annotation(call, "cloud_attempts"), "2");
}

TEST(CloudStream, DestroyingTheExecutorEndsAStreamingCall) {
  FakeCloud* fake = nullptr;
  FakeCloud cloud([&fake](int, const httplib::Request&, httplib::Response& res) {
    silent_after_one(*fake, res);
  });
  fake = &cloud;
  auto o = options_for(cloud);
  o.read_timeout = 60s;
  std::shared_ptr<scheduler::Generation> generation;
  {
    executors::CloudExecutor executor(o, nullptr);
    auto call = clean_call();
    generation = executor.submit(call).generation;
    bool finished = false;
    EXPECT_EQ(generation->take_text(5s, finished), "first");
  }
  ASSERT_TRUE(generation->finished());
  const auto& outcome = generation->wait();
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error->code(), ErrorCode::kUnavailable);
}

TEST(CloudStream, ManyCallsAtOnce) {
  FakeCloud cloud(
      [](int, const httplib::Request&, httplib::Response& res) { stream(res, kHello); });
  executors::CloudExecutor executor(options_for(cloud), nullptr);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(6);
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        auto call = clean_call();
        const auto s = executor.submit(call);
        if (drain(*s.generation) == "Hello world" && s.generation->wait().ok()) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 18);
  EXPECT_EQ(cloud.requests(), 18);
}

}  // namespace
