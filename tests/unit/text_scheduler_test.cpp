// The scheduler's queue discipline with the real stories260K model: admission, refusal when
// full or draining, deadlines, cancellation, and many submitting threads at once (run under
// ThreadSanitizer by `make test-tsan`).
#include "scheduler/text_scheduler.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "core/error.h"
#include "test_support.h"

using namespace mmserve;
using namespace std::chrono_literals;
using scheduler::Generation;
using scheduler::TextScheduler;

namespace {

class TextSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MMSERVE_REQUIRE_SHARED(mmserve::testing::stories_model());
    model_ = engine::TextModel::load(mmserve::testing::stories_model());
  }

  std::unique_ptr<TextScheduler> make(int parallel, int queue) {
    auto batch = std::make_unique<engine::TextBatch>(
        model_, engine::BatchOptions{.n_ctx = 512 * parallel, .n_parallel = parallel});
    return std::make_unique<TextScheduler>(std::move(batch),
                                           scheduler::SchedulerOptions{.queue_size = queue});
  }

  engine::GenerationRequest request(const std::string& prompt, int max_tokens) const {
    engine::GenerationRequest r;
    r.prompt = model_->tokenize(prompt, true, false);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    return r;
  }

  static Generation::Clock::time_point in(std::chrono::milliseconds d) {
    return Generation::Clock::now() + d;
  }

  std::shared_ptr<engine::TextModel> model_;
};

}  // namespace

TEST_F(TextSchedulerTest, GeneratesAndReportsQueueTime) {
  auto s = make(2, 4);
  const auto out = s->submit(request("Once upon a time", 16), in(600s))->wait();
  EXPECT_EQ(out.result.reason, engine::FinishReason::kLength);
  EXPECT_EQ(out.result.completion_tokens, 16);
  EXPECT_TRUE(out.result.text.starts_with(", there was a little girl")) << out.result.text;
  EXPECT_GE(out.queue_ms, 0);
  EXPECT_FALSE(out.timed_out());
}

TEST_F(TextSchedulerTest, ExpiredDeadlineEndsTheRequestAsTimedOut) {
  auto s = make(1, 4);
  const auto out = s->submit(request("Once upon a time", 400), in(-1ms))->wait();
  EXPECT_TRUE(out.timed_out());
  EXPECT_EQ(out.result.reason, engine::FinishReason::kCancelled);
  EXPECT_EQ(s->stats().cancelled, 1u);
}

TEST_F(TextSchedulerTest, CancelBeforeOrDuringGeneration) {
  auto s = make(1, 4);
  auto g = s->submit(request("Once upon a time", 480), in(600s));
  g->cancel();
  const auto& out = g->wait();
  EXPECT_EQ(out.result.reason, engine::FinishReason::kCancelled);
  EXPECT_LT(out.result.completion_tokens, 480);
  EXPECT_FALSE(out.timed_out());
}

TEST_F(TextSchedulerTest, StopAcceptingRefusesNewWorkButFinishesQueued) {
  auto s = make(1, 4);
  auto first = s->submit(request("Once upon a time", 64), in(600s));
  s->stop_accepting();
  try {
    s->submit(request("Once", 4), in(600s));
    FAIL() << "expected kUnavailable";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  EXPECT_EQ(first->wait().result.completion_tokens, 64);
}

TEST_F(TextSchedulerTest, TooLongForOneSequenceNamesTheField) {
  auto s = make(2, 4);  // 1024 cells in all, but one sequence holds at most 512
  try {
    s->submit(request("Once upon a time", 600), in(600s));
    FAIL() << "expected kInvalidInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "max_tokens");
  }
}

TEST_F(TextSchedulerTest, FullQueueRefusesWithBusy) {
  auto s = make(1, 1);
  std::vector<std::shared_ptr<Generation>> accepted;
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    try {
      accepted.push_back(s->submit(request("Once upon a time", 200), in(600s)));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBusy);
      ++refused;
    }
  }
  // One may run and one wait; the rest are refused (the first may already have been admitted
  // when the later ones arrive, freeing its queue place).
  EXPECT_GE(refused, 5);
  EXPECT_LE(accepted.size(), 3u);
  for (auto& g : accepted) EXPECT_EQ(g->wait().result.completion_tokens, 200);
}

TEST_F(TextSchedulerTest, ManyThreadsSubmitAndReadConcurrently) {
  auto s = make(4, 64);
  const std::string expected = s->submit(request("The cat", 24), in(600s))->wait().result.text;
  std::vector<std::thread> threads;
  std::atomic<int> matches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto g = s->submit(request("The cat", 24), in(600s));
      std::string streamed;
      bool finished = false;
      while (!finished) streamed += g->take_text(5ms, finished);
      if (streamed == expected && g->wait().result.text == expected) matches.fetch_add(1);
      (void)s->stats();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(matches.load(), 8);
}

// Beside a speech model (cpu_share.h): steps take every thread of the process while speech is
// idle, and the text share while it has work.
TEST_F(TextSchedulerTest, StepsTakeEveryThreadWhileSpeechIsIdleAndTheirShareBesideIt) {
  auto cpu = std::make_shared<scheduler::CpuShare>(3);
  auto speech = cpu->tenant(1);
  auto batch = std::make_unique<engine::TextBatch>(
      model_, engine::BatchOptions{.n_ctx = 512, .n_parallel = 1, .threads = 2});
  TextScheduler s(std::move(batch), {.queue_size = 4, .cpu = cpu->tenant(2)});
  std::mutex m;
  std::vector<int32_t> threads;
  s.set_step_observer([&](const engine::StepStats& step) {
    std::lock_guard lock(m);
    threads.push_back(step.threads);
  });
  // Text is idle again once the speech tenant is offered every thread: its scheduler thread is
  // back waiting, past the observer of its last step.
  auto text_idle = [&] {
    for (int i = 0; i < 20000 && speech->threads() != 3; ++i) std::this_thread::sleep_for(1ms);
    return speech->threads() == 3;
  };
  EXPECT_EQ(s.submit(request("Once upon a time", 4), in(600s))->wait().result.completion_tokens, 4);
  ASSERT_TRUE(text_idle());
  {
    std::lock_guard lock(m);
    ASSERT_FALSE(threads.empty());
    for (int32_t t : threads) EXPECT_EQ(t, 3);  // alone: every thread
    threads.clear();
  }
  speech->set_busy(true);
  EXPECT_EQ(s.submit(request("Once upon a time", 4), in(600s))->wait().result.completion_tokens, 4);
  ASSERT_TRUE(text_idle());
  speech->set_busy(false);
  std::lock_guard lock(m);
  ASSERT_FALSE(threads.empty());
  for (int32_t t : threads) EXPECT_EQ(t, 2);  // beside busy speech: its share
}
