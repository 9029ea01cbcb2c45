// The quota stage and its sliding windows: exact counts, concurrency slots released with the
// call, the x-ratelimit figures, and usage rebuilt from the audit log after a restart.
#include "stages/quota/quota_stage.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "core/error.h"
#include "stages/quota/rate_window.h"
#include "store/audit_store.h"
#include "store/database.h"

namespace mmserve {
namespace {

TEST(RateWindow, SumsWhatIsInsideTheSpanOnly) {
  stages::RateWindow w(60'000);
  w.add(1'000, 1);
  w.add(1'500, 2);  // the same second: one entry
  w.add(30'000, 4);
  EXPECT_EQ(w.used(30'000), 7);
  EXPECT_EQ(w.used(60'999), 7);
  EXPECT_EQ(w.used(61'000), 4);  // the first second left the window
  EXPECT_EQ(w.used(90'000), 0);
}

TEST(RateWindow, ResetIsWhenEnoughHasLeft) {
  stages::RateWindow w(60'000);
  w.add(0, 5);
  w.add(10'000, 5);
  w.add(20'000, 5);
  EXPECT_EQ(w.reset_ms(20'000, 100), 0);      // under the limit already
  EXPECT_EQ(w.reset_ms(20'000, 15), 40'000);  // the first entry must go
  EXPECT_EQ(w.reset_ms(20'000, 6), 50'000);   // two must go
  EXPECT_EQ(w.clear_ms(20'000), 60'000);      // all gone when the newest goes
  w.add(5'000, 1);                            // late (history replay): kept in order
  EXPECT_EQ(w.used(64'999), 11);
}

pipeline::Call call_of(const std::string& key, RateLimits limits) {
  pipeline::Call call;
  call.caller.id = key;
  call.caller.authenticated = true;
  call.caller.limits = limits;
  return call;
}

ErrorCode refusal_of(const stages::QuotaStage& stage, pipeline::Call& call, int* retry = nullptr) {
  try {
    stage.on_admit(call);
  } catch (const Error& e) {
    if (retry != nullptr) *retry = e.retry_after_seconds();
    return e.code();
  }
  return ErrorCode::kInternal;  // admitted
}

TEST(QuotaStage, RequestsPerMinuteAdmitExactlyTheLimitAcrossThreads) {
  const stages::QuotaStage stage(nullptr);
  const RateLimits limits{.requests_per_minute = 50};
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto call = call_of("mms_aaaaaaaa", limits);
        try {
          stage.on_admit(call);
          ++admitted;
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kRateLimited);
          EXPECT_GE(e.retry_after_seconds(), 1);
          ++refused;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_EQ(refused.load(), 110);
  // Another key has its own window; a key without limits is never counted.
  auto other = call_of("mms_bbbbbbbb", limits);
  EXPECT_NO_THROW(stage.on_admit(other));
  ASSERT_TRUE(other.rate_limit);
  EXPECT_EQ(other.rate_limit->limit_requests, 50);
  EXPECT_EQ(other.rate_limit->remaining_requests, 49);
  EXPECT_GT(other.rate_limit->reset_requests_ms, 59'000);
  auto open = call_of("api-key", {});
  EXPECT_NO_THROW(stage.on_admit(open));
  EXPECT_FALSE(open.rate_limit);
}

TEST(QuotaStage, ConcurrentSlotsComeBackWhenTheCallIsDropped) {
  const stages::QuotaStage stage(nullptr);
  const RateLimits limits{.concurrent_requests = 2};
  auto a = std::make_unique<pipeline::Call>(call_of("mms_cccccccc", limits));
  auto b = std::make_unique<pipeline::Call>(call_of("mms_cccccccc", limits));
  stage.on_admit(*a);
  stage.on_admit(*b);
  auto c = call_of("mms_cccccccc", limits);
  EXPECT_EQ(refusal_of(stage, c), ErrorCode::kRateLimited);
  a.reset();  // the edge dropped the first call: its slot is free
  auto d = call_of("mms_cccccccc", limits);
  EXPECT_NO_THROW(stage.on_admit(d));
}

TEST(QuotaStage, TokensAreChargedWhenACallCompletesAndThenRefuse) {
  const stages::QuotaStage stage(nullptr);
  const RateLimits limits{.tokens_per_minute = 100};
  auto first = call_of("mms_dddddddd", limits);
  stage.on_admit(first);
  EXPECT_EQ(first.rate_limit->remaining_tokens, 100);
  pipeline::Completion done;
  done.usage.prompt_tokens = 60;
  done.usage.completion_tokens = 40;
  stage.on_complete(first, done);
  auto second = call_of("mms_dddddddd", limits);
  int retry = 0;
  EXPECT_EQ(refusal_of(stage, second, &retry), ErrorCode::kRateLimited);
  EXPECT_GE(retry, 59);
  ASSERT_TRUE(second.rate_limit);
  EXPECT_EQ(second.rate_limit->remaining_tokens, 0);
}

TEST(QuotaStage, AudioSecondsPerDayRefuseTranscriptionsOnly) {
  const stages::QuotaStage stage(nullptr);
  const RateLimits limits{.audio_seconds_per_day = 10};
  auto speech = call_of("mms_eeeeeeee", limits);
  speech.task = runtime::Task::kSpeechTranscribe;
  stage.on_admit(speech);
  stage.on_request(speech);
  pipeline::Completion done;
  done.usage.audio_seconds = 11;
  stage.on_complete(speech, done);
  auto again = call_of("mms_eeeeeeee", limits);
  again.task = runtime::Task::kSpeechTranscribe;
  stage.on_admit(again);
  EXPECT_THROW(stage.on_request(again), Error);
  auto text = call_of("mms_eeeeeeee", limits);
  stage.on_admit(text);
  EXPECT_NO_THROW(stage.on_request(text));
}

TEST(QuotaStage, UsageIsRebuiltFromTheAuditLog) {
  const auto dir =
      std::filesystem::path(::testing::TempDir()) / ("quota_history_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  store::Database db((dir / "mmserve.db").string());
  store::AuditStore audit(db);
  const int64_t now = store::unix_ms_now();
  for (int i = 0; i < 3; ++i) {
    audit.append({.time_ms = now - 10'000 + i,
                  .key = "mms_ffffffff",
                  .status = 200,
                  .prompt_tokens = 10,
                  .completion_tokens = 5,
                  .charged = true});
  }
  audit.append({.time_ms = now - 5'000, .key = "mms_ffffffff", .status = 401, .charged = false});
  audit.append({.time_ms = now - 120'000, .key = "mms_ffffffff", .status = 200, .charged = true});
  const stages::QuotaStage stage(&audit);
  const auto status =
      stage.status("mms_ffffffff", {.requests_per_minute = 5, .tokens_per_minute = 100});
  ASSERT_TRUE(status);
  EXPECT_EQ(status->remaining_requests, 2);  // three charged in the last minute
  EXPECT_EQ(status->remaining_tokens, 55);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mmserve
