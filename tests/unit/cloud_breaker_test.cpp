// The cloud executor's circuit breaker (executors/cloud/circuit_breaker.h) on a fake clock:
// closed, open after consecutive failures, half-open with one trial after the cooldown, closed
// again by a successful trial or reopened by a failed one.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "executors/cloud/circuit_breaker.h"

using namespace mmserve;
using executors::CircuitBreaker;
using State = CircuitBreaker::State;
using namespace std::chrono_literals;

namespace {

// A clock the test moves by hand.
struct FakeClock {
  CircuitBreaker::Clock::time_point now{};
  CircuitBreaker::Now function() {
    return [this] { return now; };
  }
};

TEST(CloudBreaker, StaysClosedUntilEnoughFailuresInARow) {
  FakeClock clock;
  CircuitBreaker breaker(3, 1000ms, clock.function());
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.allow());
  breaker.record_failure();
  breaker.record_failure();
  breaker.record_success();  // resets the count
  breaker.record_failure();
  breaker.record_failure();
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.allow());
  breaker.record_failure();
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_FALSE(breaker.allow());
}

TEST(CloudBreaker, AfterTheCooldownOneTrialAtATimeAndItsSuccessCloses) {
  FakeClock clock;
  CircuitBreaker breaker(1, 1000ms, clock.function());
  breaker.record_failure();
  ASSERT_EQ(breaker.state(), State::kOpen);
  clock.now += 999ms;
  EXPECT_FALSE(breaker.allow());
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.now += 1ms;
  EXPECT_TRUE(breaker.allow());  // the trial
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_FALSE(breaker.allow());  // a second caller while the trial is out
  breaker.record_success();
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.allow());
  EXPECT_TRUE(breaker.allow());
}

TEST(CloudBreaker, AFailedTrialOpensItForAnotherCooldown) {
  FakeClock clock;
  CircuitBreaker breaker(2, 500ms, clock.function());
  breaker.record_failure();
  breaker.record_failure();
  clock.now += 600ms;
  ASSERT_TRUE(breaker.allow());
  breaker.record_failure();
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.now += 499ms;  // counted from the failed trial, not from the first opening
  EXPECT_FALSE(breaker.allow());
  clock.now += 1ms;
  EXPECT_TRUE(breaker.allow());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

TEST(CloudBreaker, AReleasedTrialLetsTheNextCallerTry) {
  FakeClock clock;
  CircuitBreaker breaker(1, 100ms, clock.function());
  breaker.record_failure();
  clock.now += 100ms;
  ASSERT_TRUE(breaker.allow());
  EXPECT_FALSE(breaker.allow());
  breaker.release();  // the trial was cancelled: no verdict
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
  EXPECT_TRUE(breaker.allow());
  EXPECT_FALSE(breaker.allow());
}

TEST(CloudBreaker, ReleaseInTheClosedStateKeepsTheCount) {
  FakeClock clock;
  CircuitBreaker breaker(2, 100ms, clock.function());
  breaker.record_failure();
  breaker.release();
  breaker.record_failure();
  EXPECT_EQ(breaker.state(), State::kOpen);
}

TEST(CloudBreaker, AZeroThresholdCountsAsOne) {
  CircuitBreaker breaker(0, 100ms);
  EXPECT_TRUE(breaker.allow());
  breaker.record_failure();
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_STREQ(CircuitBreaker::state_name(breaker.state()), "open");
}

TEST(CloudBreaker, IsSafeToUseFromManyThreads) {
  CircuitBreaker breaker(5, 1ms);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (breaker.allow()) {
          allowed.fetch_add(1);
          ((i + t) % 3 == 0) ? breaker.record_success() : breaker.record_failure();
        }
        (void)breaker.state();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_GT(allowed.load(), 0);
}

}  // namespace
