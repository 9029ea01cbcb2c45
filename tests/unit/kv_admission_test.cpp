// The scheduler's KV admission policy (scheduler/text_scheduler.h) with the real stories260K
// model (512-token training context): reservations admitted in one step add up, requests
// without max_tokens get their fair share and batch, and a pool smaller than parallel x the
// sequence capacity never fails a request for lack of room.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "core/error.h"
#include "scheduler/text_scheduler.h"
#include "test_support.h"

using namespace mmserve;
using namespace std::chrono_literals;
using scheduler::Generation;
using scheduler::TextScheduler;

namespace {

class KvAdmissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MMSERVE_REQUIRE_SHARED(mmserve::testing::stories_model());
    model_ = engine::TextModel::load(mmserve::testing::stories_model());
  }

  std::unique_ptr<TextScheduler> make(int parallel, int n_ctx) {
    auto batch = std::make_unique<engine::TextBatch>(
        model_, engine::BatchOptions{.n_ctx = n_ctx, .n_parallel = parallel});
    return std::make_unique<TextScheduler>(std::move(batch),
                                           scheduler::SchedulerOptions{.queue_size = 64});
  }

  // max_tokens 0: not given (the scheduler's default applies).
  engine::GenerationRequest request(int max_tokens) const {
    engine::GenerationRequest r;
    r.prompt = model_->tokenize("Once upon a time", true, false);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    r.ignore_eos = true;  // every request runs to its limit: the worst case for the pool
    return r;
  }

  // Submits every request, samples how many run at once until all finish, and checks that
  // each ended with "length" (never an error for lack of room). Returns the most seen running.
  static int run_all(TextScheduler& s, std::vector<engine::GenerationRequest> requests) {
    std::vector<std::shared_ptr<Generation>> gens;
    // A deadline far beyond any run, sanitizers and a loaded CI box included: this test is
    // about room in the KV pool, never about time.
    const auto deadline = Generation::Clock::now() + 1h;
    for (auto& r : requests) gens.push_back(s.submit(std::move(r), deadline));
    int most = 0;
    for (;;) {
      most = std::max(most, s.stats().running);
      if (std::ranges::all_of(gens, [](const auto& g) { return g->finished(); })) break;
      std::this_thread::sleep_for(1ms);
    }
    for (const auto& g : gens) {
      const auto& o = g->wait();
      EXPECT_TRUE(o.ok()) << (o.error ? o.error->what() : "");
      EXPECT_EQ(o.result.reason, engine::FinishReason::kLength);
    }
    return most;
  }

  std::shared_ptr<engine::TextModel> model_;
};

// Finding 3: -np 2 -c 512, a 400-token request running and two 300-token requests queued. Each
// queued one fits alone when the first ends, but not both: they must run one after the other.
TEST_F(KvAdmissionTest, ReservationsAdmittedInOneStepAddUp) {
  auto s = make(2, 512);
  std::vector<engine::GenerationRequest> rs;
  rs.push_back(request(400));
  rs.push_back(request(300));
  rs.push_back(request(300));
  EXPECT_EQ(run_all(*s, std::move(rs)), 1);
}

// Finding 2: requests without max_tokens used to reserve the whole sequence capacity each.
// Now each gets its share (n_ctx / parallel), so `parallel` of them run together.
TEST_F(KvAdmissionTest, RequestsWithoutMaxTokensBatchInTheirShare) {
  auto s = make(4, 512);
  EXPECT_EQ(s->sequence_share(), 128);
  const auto prompt = request(0).prompt.size();
  EXPECT_EQ(s->default_max_tokens(prompt), 128 - static_cast<int32_t>(prompt));
  std::vector<engine::GenerationRequest> rs;
  for (int i = 0; i < 8; ++i) rs.push_back(request(0));
  EXPECT_EQ(run_all(*s, std::move(rs)), 4);
}

// A pool smaller than parallel x capacity (4 slots, 1024 cells, 512 per sequence): requests
// that reserve most of a sequence wait for room instead of failing mid-answer.
TEST_F(KvAdmissionTest, APoolSmallerThanParallelTimesCapacityNeverFailsARequest) {
  auto s = make(4, 1024);
  EXPECT_EQ(s->sequence_capacity(), 512);
  std::vector<engine::GenerationRequest> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(request(400));
  EXPECT_EQ(run_all(*s, std::move(rs)), 2);
}

// A prompt that alone fills its share still gets room to answer, within one sequence.
TEST_F(KvAdmissionTest, ALongPromptWithoutMaxTokensStillGetsAnAnswer) {
  auto s = make(4, 512);
  const int32_t got = s->default_max_tokens(200);
  EXPECT_EQ(got, std::min(512 - 200, TextScheduler::kMinDefaultTokens));
  EXPECT_EQ(s->default_max_tokens(511), 1);
}

}  // namespace
