// The speech scheduler with stand-in whisper states: the test opens a gate for each window, so
// the order of events is exact and nothing depends on timing.
#include "scheduler/speech_scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <mutex>

#include "core/error.h"

namespace mmserve::scheduler {
namespace {

using engine::WindowResult;
using engine::WindowTask;
constexpr int kRate = 16000;

// Shared by the fake runners: what started, and a gate the test opens one window at a time.
struct Bench {
  std::mutex m;
  std::condition_variable cv;
  std::vector<WindowTask> started;  // in start order (samples point into the request)
  int running = 0;
  int max_running = 0;
  int permits = 0;  // windows allowed to finish
  bool fail_next = false;

  // Waits (bounded, so a bug fails the test instead of hanging it) until `pred` holds.
  template <typename Pred>
  bool wait_for(Pred pred) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, std::chrono::seconds(20), pred);
  }
  void release(int n = 1) {
    std::lock_guard lock(m);
    permits += n;
    cv.notify_all();
  }
};

class FakeRunner : public engine::WindowRunner {
 public:
  explicit FakeRunner(Bench& bench) : bench_(bench) {}
  WindowResult run(const WindowTask& task) override {
    std::unique_lock lock(bench_.m);
    bench_.started.push_back(task);
    bench_.max_running = std::max(bench_.max_running, ++bench_.running);
    bench_.cv.notify_all();
    while (bench_.permits == 0 && !task.abort->load()) {
      bench_.cv.wait_for(lock, std::chrono::milliseconds(2));
    }
    --bench_.running;
    bench_.cv.notify_all();
    if (task.abort->load()) throw Error(ErrorCode::kCancelled, "cancelled");
    --bench_.permits;
    if (bench_.fail_next) {
      bench_.fail_next = false;
      throw Error(ErrorCode::kInternal, "engine exploded");
    }
    WindowResult r;
    r.language = task.language.empty() ? "de" : task.language;
    engine::SpeechSegment s;
    s.start = task.offset;
    s.end = task.offset + static_cast<double>(task.samples.size()) / kRate;
    s.text = " w" + std::to_string(static_cast<int>(task.offset));
    s.tokens = {static_cast<int32_t>(task.offset) + 1000};
    r.segments.push_back(s);
    return r;
  }

 private:
  Bench& bench_;
};

std::unique_ptr<SpeechScheduler> make(Bench& bench, int parallel, SpeechSchedulerOptions options) {
  std::vector<std::unique_ptr<engine::WindowRunner>> runners;
  for (int i = 0; i < parallel; ++i) runners.push_back(std::make_unique<FakeRunner>(bench));
  return std::make_unique<SpeechScheduler>(std::move(runners), nullptr, options);
}

std::unique_ptr<SpeechScheduler> make(Bench& bench, int parallel, int threads = 8, int queue = 8) {
  return make(bench, parallel, SpeechSchedulerOptions{.threads = threads, .queue_size = queue});
}

// A window's request is known by the buffer it points into.
const float* request_of(const WindowTask& t) {
  return t.samples.data() - std::llround(t.offset * kRate);
}

SpeechRequest audio(double seconds) {
  SpeechRequest r;
  r.samples.assign(static_cast<size_t>(seconds * kRate), 0.1f);
  return r;
}

const auto kNever = SpeechJob::Clock::time_point::max();

TEST(SpeechScheduler, AShortRequestWaitsForOneWindowNotForTheWholeLongOne) {
  Bench bench;
  auto speech = make(bench, 1);
  auto long_job = speech->submit(audio(85), kNever);  // three windows
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
  auto short_job = speech->submit(audio(2), kNever);
  bench.release();  // long window 1 ends; the short request is served before long window 2
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 2; }));
  EXPECT_EQ(bench.started[1].samples.size(), static_cast<size_t>(2 * kRate));
  bench.release();
  const auto& s = short_job->wait();
  EXPECT_FALSE(long_job->finished());
  EXPECT_EQ(s.windows, 1);
  EXPECT_EQ(s.transcript.text(), "w0");
  bench.release(2);
  const auto& l = long_job->wait();
  EXPECT_EQ(l.windows, 3);
  EXPECT_EQ(l.transcript.segments.size(), 3u);
  EXPECT_DOUBLE_EQ(l.transcript.duration, 85.0);
  ASSERT_EQ(bench.started.size(), 4u);
  EXPECT_EQ(bench.started[2].offset, bench.started[0].samples.size() / double(kRate));
}

TEST(SpeechScheduler, TheRequestWithTheLeastAudioLeftGoesNext) {
  Bench bench;
  auto speech = make(bench, 1, {.threads = 8, .aging = 0});
  auto a = speech->submit(audio(65), kNever);  // windows of 30, 30 and 5 s
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
  auto b = speech->submit(audio(40), kNever);
  auto c = speech->submit(audio(10), kNever);
  auto d = speech->submit(audio(20), kNever);
  bench.release(7);
  for (const auto& job : {a, b, c, d}) job->wait();
  // After a's first window: c (10 s), d (20 s), a (35 s left: both its windows), then b (40 s).
  ASSERT_EQ(bench.started.size(), 7u);
  const float* a_data = request_of(bench.started[0]);
  const float* c_data = request_of(bench.started[1]);
  const float* d_data = request_of(bench.started[2]);
  EXPECT_EQ(bench.started[1].samples.size(), static_cast<size_t>(10 * kRate));
  EXPECT_EQ(bench.started[2].samples.size(), static_cast<size_t>(20 * kRate));
  EXPECT_NE(c_data, d_data);
  EXPECT_EQ(request_of(bench.started[3]), a_data);
  EXPECT_EQ(request_of(bench.started[4]), a_data);
  const float* b_data = request_of(bench.started[5]);
  EXPECT_EQ(request_of(bench.started[6]), b_data);
  EXPECT_NE(b_data, a_data);
  EXPECT_GT(bench.started[6].offset, 0.0);  // b's second window
}

// Short requests arriving one after another would starve a long one under shortest-first alone:
// with aging, each second of their audio it waits through is a second of credit (aging 1).
TEST(SpeechScheduler, AgingLetsALongRequestThroughAStreamOfShortOnes) {
  for (const double aging : {0.0, 1.0}) {
    Bench bench;
    auto speech = make(bench, 1, {.threads = 8, .aging = aging});
    auto long_job = speech->submit(audio(65), kNever);
    ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
    const float* long_data = request_of(bench.started[0]);
    std::vector<std::shared_ptr<SpeechJob>> shorts;
    size_t long_second_window = 0;  // its position among the window starts
    for (size_t i = 1; i <= 12 && long_second_window == 0; ++i) {
      shorts.push_back(speech->submit(audio(5), kNever));  // always one fresh short request
      bench.release();
      ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == i + 1; }));
      if (request_of(bench.started[i]) == long_data) long_second_window = i;
    }
    if (aging == 0) {
      EXPECT_EQ(long_second_window, 0u);  // starved while short ones keep coming
    } else {
      // 35 s left against fresh 5 s requests: ahead once 30 s of credit more than ties them,
      // after the seventh short window.
      EXPECT_EQ(long_second_window, 8u);
    }
    speech->cancel_all();
  }
}

// Independent requests run at the same time and share the threads, each window with at least
// the minimum.
TEST(SpeechScheduler, AtMostTheBudgetOverTheMinimumWindowsRunAtOnce) {
  Bench bench;
  auto speech = make(bench, 4, {.threads = 4, .min_threads_per_window = 2});
  auto first = speech->submit(audio(5), kNever);
  ASSERT_TRUE(bench.wait_for([&] { return bench.running == 1; }));
  auto second = speech->submit(audio(5), kNever);
  auto third = speech->submit(audio(5), kNever);
  auto fourth = speech->submit(audio(5), kNever);
  // The first holds the whole budget: the others wait for it rather than start with a thread.
  EXPECT_EQ(speech->stats().running, 1);
  bench.release();
  ASSERT_TRUE(bench.wait_for([&] { return bench.running == 2; }));
  EXPECT_EQ(speech->stats().running, 2);  // two windows of two threads; the fourth waits
  bench.release(3);
  for (const auto& job : {first, second, third, fourth}) job->wait();
  EXPECT_EQ(bench.max_running, 2);
  ASSERT_EQ(bench.started.size(), 4u);
  EXPECT_EQ(bench.started[0].threads, 4);  // alone: the whole budget
  EXPECT_EQ(bench.started[1].threads, 2);
  EXPECT_EQ(bench.started[2].threads, 2);
  EXPECT_GE(bench.started[3].threads, 2);
}

// Beside a text model (cpu_share.h): a window takes every thread of the process while the
// text model is idle and the speech share while it has work; the scheduler says it is busy
// exactly while a request is in flight.
TEST(SpeechScheduler, WindowsTakeEveryThreadWhileTextIsIdleAndTheirShareBesideIt) {
  Bench bench;
  auto cpu = std::make_shared<CpuShare>(4);
  auto text = cpu->tenant(2);
  auto speech = make(bench, 1, {.threads = 2, .min_threads_per_window = 2, .cpu = cpu->tenant(2)});
  EXPECT_EQ(text->threads(), 4);                 // no speech in flight
  auto job = speech->submit(audio(85), kNever);  // three windows
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
  EXPECT_EQ(text->threads(), 2);  // speech is busy: text gets its share
  text->set_busy(true);
  bench.release();
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 2; }));
  text->set_busy(false);
  bench.release(2);
  EXPECT_EQ(job->wait().window_threads, (std::vector<int32_t>{4, 2, 4}));
  ASSERT_EQ(bench.started.size(), 3u);
  EXPECT_EQ(bench.started[0].threads, 4);
  EXPECT_EQ(bench.started[1].threads, 2);
  EXPECT_EQ(bench.started[2].threads, 4);
  EXPECT_EQ(text->threads(), 4);  // done: speech is idle again
}

TEST(SpeechScheduler, EachWindowIsConditionedOnThePreviousOneAndKeepsTheLanguage) {
  Bench bench;
  auto speech = make(bench, 1);
  auto request = audio(40);
  request.prompt = {7, 8, 9};
  auto job = speech->submit(std::move(request), kNever);
  bench.release(2);
  const auto& o = job->wait();
  ASSERT_EQ(bench.started.size(), 2u);
  EXPECT_EQ(bench.started[0].prompt, (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(bench.started[0].language, "");                          // detect
  EXPECT_EQ(bench.started[1].prompt, (std::vector<int32_t>{1000}));  // window 1's text
  EXPECT_EQ(bench.started[1].language, "de");                        // as detected
  EXPECT_EQ(o.transcript.language, "de");
  EXPECT_TRUE(bench.started[0].fallback);  // temperature 0
}

TEST(SpeechScheduler, FallbackIsForTemperatureZeroAndCanBeTurnedOff) {
  for (const bool fallback : {true, false}) {
    Bench bench;
    auto speech = make(bench, 1, {.threads = 8, .fallback = fallback});
    auto greedy = audio(3);
    auto sampled = audio(3);
    sampled.temperature = 0.4f;
    auto first = speech->submit(std::move(greedy), kNever);
    bench.release(1);
    (void)first->wait();
    auto second = speech->submit(std::move(sampled), kNever);
    bench.release(1);
    (void)second->wait();
    ASSERT_EQ(bench.started.size(), 2u);
    EXPECT_EQ(bench.started[0].fallback, fallback);  // temperature 0
    EXPECT_FALSE(bench.started[1].fallback);         // a temperature: no fallback
  }
}

TEST(SpeechScheduler, CancellingStopsARunningWindowAndDropsAQueuedRequest) {
  Bench bench;
  auto speech = make(bench, 1);
  auto running = speech->submit(audio(50), kNever);
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
  auto queued = speech->submit(audio(3), kNever);
  queued->cancel();
  EXPECT_TRUE(queued->wait().cancelled);
  EXPECT_EQ(queued->wait().windows, 0);
  running->cancel();
  EXPECT_TRUE(running->wait().cancelled);
  EXPECT_EQ(bench.started.size(), 1u);
  EXPECT_EQ(speech->stats().cancelled, 2u);
  EXPECT_EQ(speech->stats().active, 0);
}

TEST(SpeechScheduler, TheDeadlineCancelsAndSaysTimedOut) {
  Bench bench;
  auto speech = make(bench, 1);
  auto job = speech->submit(audio(5), SpeechJob::Clock::now() + std::chrono::milliseconds(50));
  const auto& o = job->wait();
  EXPECT_TRUE(o.timed_out);
  EXPECT_TRUE(o.cancelled);
}

TEST(SpeechScheduler, AFullQueueRefusesAndADrainingOneToo) {
  Bench bench;
  auto speech = make(bench, 1, 8, 1);
  auto running = speech->submit(audio(5), kNever);
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
  auto queued = speech->submit(audio(5), kNever);
  try {
    speech->submit(audio(5), kNever);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBusy);
  }
  speech->stop_accepting();
  try {
    speech->submit(audio(5), kNever);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  bench.release(2);
  EXPECT_EQ(running->wait().windows, 1);
  EXPECT_EQ(queued->wait().windows, 1);  // accepted work still finishes while draining
}

TEST(SpeechScheduler, AnEngineFailureEndsOnlyItsRequest) {
  Bench bench;
  auto speech = make(bench, 1);
  bench.fail_next = true;
  auto bad = speech->submit(audio(5), kNever);
  auto good = speech->submit(audio(5), kNever);
  bench.release(2);
  ASSERT_TRUE(bad->wait().error.has_value());
  EXPECT_STREQ(bad->wait().error->what(), "engine exploded");
  EXPECT_FALSE(good->wait().error.has_value());
  EXPECT_EQ(good->wait().transcript.text(), "w0");
}

TEST(SpeechScheduler, NoAudioFinishesAtOnce) {
  Bench bench;
  auto speech = make(bench, 1);
  const auto job = speech->submit(SpeechRequest{}, kNever);  // the outcome lives in the job
  const auto& o = job->wait();
  EXPECT_EQ(o.windows, 0);
  EXPECT_TRUE(o.transcript.segments.empty());
  EXPECT_TRUE(bench.started.empty());
}

TEST(SpeechScheduler, DestroyingItCancelsWhatIsInFlight) {
  Bench bench;
  auto speech = make(bench, 1);
  auto job = speech->submit(audio(50), kNever);
  ASSERT_TRUE(bench.wait_for([&] { return bench.started.size() == 1; }));
  speech.reset();
  EXPECT_TRUE(job->wait().cancelled);
}

}  // namespace
}  // namespace mmserve::scheduler
