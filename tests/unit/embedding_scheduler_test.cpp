// The embedding scheduler's queue discipline with a fake embedder that can be held inside a
// call: packing waiting requests into one call, splitting a large request across calls in
// order, refusal when full or draining, cancellation, deadlines and engine failures. No test
// depends on timing: each waits for the fake to be inside its call before going on.
#include "scheduler/embedding_scheduler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "core/error.h"

using namespace mmserve;
using namespace std::chrono_literals;
using scheduler::EmbeddingJob;
using scheduler::EmbeddingScheduler;

namespace {

// Returns {first token, input length} per input; holds each call while `hold` is set.
class FakeEmbedder : public engine::Embedder {
 public:
  struct Shared {
    std::mutex mutex;
    std::condition_variable changed;
    bool hold = false;
    int entered = 0;
    bool fail = false;
    std::vector<size_t> call_sizes;
  };
  FakeEmbedder(std::shared_ptr<Shared> s, int32_t tokens, int32_t sequences)
      : s_(std::move(s)), tokens_(tokens), sequences_(sequences) {}
  int32_t batch_tokens() const override { return tokens_; }
  int32_t max_sequences() const override { return sequences_; }
  void validate(const std::vector<engine::Token>& t, const std::string& field) const override {
    if (t.empty() || static_cast<int32_t>(t.size()) > tokens_) {
      throw Error(ErrorCode::kInvalidInput, "bad input", field);
    }
  }
  std::vector<std::vector<float>> embed(
      const std::vector<std::vector<engine::Token>>& inputs) override {
    std::unique_lock lock(s_->mutex);
    s_->call_sizes.push_back(inputs.size());
    ++s_->entered;
    s_->changed.notify_all();
    s_->changed.wait(lock, [&] { return !s_->hold; });
    if (s_->fail) throw Error(ErrorCode::kInternal, "the fake engine failed");
    std::vector<std::vector<float>> out;
    for (const auto& in : inputs) {
      out.push_back({static_cast<float>(in[0]), static_cast<float>(in.size())});
    }
    return out;
  }

 private:
  std::shared_ptr<Shared> s_;
  int32_t tokens_, sequences_;
};

class EmbeddingSchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<EmbeddingScheduler> make(int32_t sequences, int32_t queue, int32_t tokens = 64) {
    return std::make_unique<EmbeddingScheduler>(
        std::make_unique<FakeEmbedder>(shared_, tokens, sequences),
        scheduler::EmbeddingSchedulerOptions{.queue_size = queue});
  }
  void hold() {
    std::lock_guard lock(shared_->mutex);
    shared_->hold = true;
  }
  void release() {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->hold = false;
    }
    shared_->changed.notify_all();
  }
  void wait_entered(int n) {
    std::unique_lock lock(shared_->mutex);
    shared_->changed.wait(lock, [&] { return shared_->entered >= n; });
  }
  static scheduler::EmbeddingRequest req(std::vector<std::vector<engine::Token>> inputs) {
    return {.inputs = std::move(inputs), .fields = {}};
  }
  static EmbeddingJob::Clock::time_point later() { return EmbeddingJob::Clock::now() + 1h; }

  std::shared_ptr<FakeEmbedder::Shared> shared_ = std::make_shared<FakeEmbedder::Shared>();
};

}  // namespace

TEST_F(EmbeddingSchedulerTest, WaitingRequestsShareOneCall) {
  auto s = make(8, 16);
  hold();
  auto a = s->submit(req({{1, 1}}), later());
  wait_entered(1);  // a is inside the first call; the next three wait together
  auto b = s->submit(req({{2}}), later());
  auto c = s->submit(req({{3, 3, 3}, {4}}), later());
  auto d = s->submit(req({{5}}), later());
  release();
  EXPECT_EQ(d->wait().vectors, (std::vector<std::vector<float>>{{5, 1}}));
  EXPECT_EQ(c->wait().vectors, (std::vector<std::vector<float>>{{3, 3}, {4, 1}}));
  EXPECT_EQ(c->wait().prompt_tokens, 4);
  EXPECT_TRUE(a->wait().ok());
  EXPECT_TRUE(b->wait().ok());
  std::lock_guard lock(shared_->mutex);
  EXPECT_EQ(shared_->call_sizes, (std::vector<size_t>{1, 4}));
  EXPECT_EQ(s->stats().calls, 2u);
  EXPECT_EQ(s->stats().inputs, 5u);
}

TEST_F(EmbeddingSchedulerTest, ALargeRequestSpansCallsInOrder) {
  auto s = make(2, 4, /*tokens=*/6);
  auto job = s->submit(req({{1}, {2, 2}, {3, 3, 3}, {4, 4, 4, 4}, {5}}), later());
  const auto& o = job->wait();
  ASSERT_TRUE(o.ok());
  ASSERT_EQ(o.vectors.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(o.vectors[i][0], static_cast<float>(i + 1));
  std::lock_guard lock(shared_->mutex);
  // At most 2 inputs and 6 tokens per call: {1},{2,2} | {3,3,3} | {4,4,4,4},{5}.
  EXPECT_EQ(shared_->call_sizes, (std::vector<size_t>{2, 1, 2}));
}

TEST_F(EmbeddingSchedulerTest, RefusesWithBusyWhenFull) {
  auto s = make(1, 1);  // one in the call and one waiting
  hold();
  auto a = s->submit(req({{1}}), later());
  wait_entered(1);
  auto b = s->submit(req({{2}}), later());
  try {
    s->submit(req({{3}}), later());
    FAIL() << "a third request was queued";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBusy);
  }
  EXPECT_EQ(s->stats().outstanding, 2);
  release();
  EXPECT_TRUE(a->wait().ok());
  EXPECT_TRUE(b->wait().ok());
  EXPECT_NO_THROW(s->submit(req({{4}}), later())->wait());
}

TEST_F(EmbeddingSchedulerTest, ValidatesEveryInputNamingItsField) {
  auto s = make(4, 4, 8);
  scheduler::EmbeddingRequest r{.inputs = {{1}, {}}, .fields = {"input[0]", "input[1]"}};
  try {
    s->submit(std::move(r), later());
    FAIL() << "an empty input was queued";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "input[1]");
  }
  EXPECT_THROW(s->submit(req({}), later()), Error);
  EXPECT_EQ(s->stats().outstanding, 0);
}

TEST_F(EmbeddingSchedulerTest, CancelledAndExpiredRequestsAreDropped) {
  auto s = make(4, 4);
  hold();
  auto a = s->submit(req({{1}}), later());
  wait_entered(1);
  auto b = s->submit(req({{2}}), later());
  b->cancel();
  auto c = s->submit(req({{3}}), EmbeddingJob::Clock::now() - 1s);
  release();
  EXPECT_TRUE(a->wait().ok());
  ASSERT_FALSE(b->wait().ok());
  EXPECT_EQ(b->wait().error->code(), ErrorCode::kCancelled);
  ASSERT_FALSE(c->wait().ok());
  EXPECT_EQ(c->wait().error->code(), ErrorCode::kTimeout);
  EXPECT_EQ(s->stats().cancelled, 2u);
}

TEST_F(EmbeddingSchedulerTest, AnEngineFailureFailsTheCallsRequests) {
  auto s = make(4, 4);
  {
    std::lock_guard lock(shared_->mutex);
    shared_->fail = true;
  }
  auto a = s->submit(req({{1}}), later());
  ASSERT_FALSE(a->wait().ok());
  EXPECT_EQ(a->wait().error->code(), ErrorCode::kInternal);
  EXPECT_EQ(s->stats().outstanding, 0);
}

TEST_F(EmbeddingSchedulerTest, DrainingRefusesAndShutdownEndsWhatWaits) {
  auto s = make(1, 4);
  hold();
  auto a = s->submit(req({{1}}), later());
  wait_entered(1);
  auto b = s->submit(req({{2}}), later());
  s->stop_accepting();
  try {
    s->submit(req({{3}}), later());
    FAIL() << "a request was accepted while draining";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  s->cancel_all();
  release();
  EXPECT_TRUE(a->wait().ok());  // it was in the call already
  ASSERT_FALSE(b->wait().ok());
  EXPECT_EQ(b->wait().error->code(), ErrorCode::kUnavailable);
  s.reset();  // joins
}

TEST_F(EmbeddingSchedulerTest, ProbeRunsARealCall) {
  auto s = make(4, 4);
  EXPECT_NO_THROW(s->probe({7, 7}, 1min));
  EXPECT_EQ(s->stats().calls, 1u);
  {
    std::lock_guard lock(shared_->mutex);
    shared_->fail = true;
  }
  try {
    s->probe({7}, 1min);
    FAIL() << "a failing probe passed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelLoad);
  }
}
