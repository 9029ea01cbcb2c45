// The metrics registry: counter, gauge and histogram semantics, name validation, and exact
// totals when many threads update at once (run under ThreadSanitizer by `make test-tsan`).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "core/error.h"
#include "metrics/registry.h"

using mmserve::Error;
using namespace mmserve::metrics;

TEST(MetricsRegistry, CounterOnlyGoesUp) {
  Registry r;
  auto& c = r.counter("c_total", "help").labels({});
  c.inc();
  c.inc(2.5);
  c.inc(-4);   // ignored: a counter never decreases
  c.inc(NAN);  // ignored
  EXPECT_DOUBLE_EQ(c.value(), 3.5);
}

TEST(MetricsRegistry, GaugeSetsAndAdds) {
  Registry r;
  auto& g = r.gauge("g", "help").labels({});
  g.set(5);
  g.add(-7);
  EXPECT_DOUBLE_EQ(g.value(), -2);
}

TEST(MetricsRegistry, HistogramBucketsAreInclusiveUpperBounds) {
  Registry r;
  auto& h = r.histogram("h_seconds", "help", {1, 2, 5}).labels({});
  for (const double v : {0.5, 1.0, 1.5, 2.0, 4.0, 5.0, 7.0, 100.0}) h.observe(v);
  h.observe(NAN);  // ignored
  const auto s = h.snapshot();
  ASSERT_EQ(s.cumulative.size(), 4u);
  EXPECT_EQ(s.cumulative[0], 2u);  // le=1: 0.5, 1
  EXPECT_EQ(s.cumulative[1], 4u);  // le=2: + 1.5, 2
  EXPECT_EQ(s.cumulative[2], 6u);  // le=5: + 4, 5
  EXPECT_EQ(s.cumulative[3], 8u);  // +Inf: everything
  EXPECT_EQ(s.count, 8u);
  EXPECT_DOUBLE_EQ(s.sum, 0.5 + 1 + 1.5 + 2 + 4 + 5 + 7 + 100);
}

TEST(MetricsRegistry, HistogramObservesManyAtOnce) {
  Registry r;
  auto& h = r.histogram("h", "help", {1}).labels({});
  h.observe(0.25, 4);
  const auto s = h.snapshot();
  EXPECT_EQ(s.cumulative[0], 4u);
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.sum, 1.0);
}

TEST(MetricsRegistry, LabelledChildrenAreDistinctAndStable) {
  Registry r;
  auto& family = r.counter("req_total", "help", {"task", "status"});
  auto& a = family.labels({"text-gen", "200"});
  auto& b = family.labels({"text-gen", "429"});
  EXPECT_NE(&a, &b);
  EXPECT_EQ(&a, &family.labels({"text-gen", "200"}));
  a.inc();
  EXPECT_DOUBLE_EQ(family.labels({"text-gen", "200"}).value(), 1);
  EXPECT_DOUBLE_EQ(b.value(), 0);
}

TEST(MetricsRegistry, WrongNumberOfLabelValuesThrows) {
  Registry r;
  auto& family = r.counter("req_total", "help", {"task"});
  EXPECT_THROW(family.labels({}), Error);
  EXPECT_THROW(family.labels({"a", "b"}), Error);
}

TEST(MetricsRegistry, InvalidOrDuplicateNamesThrow) {
  Registry r;
  r.counter("ok_total", "help");
  EXPECT_THROW(r.counter("ok_total", "again"), Error);
  EXPECT_THROW(r.gauge("ok_total", "other type"), Error);
  EXPECT_THROW(r.gauge("1starts_with_digit", "help"), Error);
  EXPECT_THROW(r.gauge("has-dash", "help"), Error);
  EXPECT_THROW(r.gauge("g1", "help", {"__reserved"}), Error);
  EXPECT_THROW(r.gauge("g2", "help", {"bad-label"}), Error);
  EXPECT_THROW(r.gauge("g3", "help", {"a", "a"}), Error);
  EXPECT_THROW(r.histogram("h1", "help", {1}, {"le"}), Error);
  EXPECT_THROW(r.histogram("h2", "help", {}), Error);
  EXPECT_THROW(r.histogram("h3", "help", {1, 1}), Error);
  EXPECT_THROW(r.histogram("h4", "help", {2, 1}), Error);
  EXPECT_THROW(r.histogram("h5", "help", {1, INFINITY}), Error);
  EXPECT_TRUE(r.contains("ok_total"));
  EXPECT_FALSE(r.contains("h5"));
}

TEST(MetricsRegistry, ExponentialBuckets) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
}

TEST(MetricsRegistry, ConcurrentUpdatesAreExact) {
  Registry r;
  auto& counters = r.counter("c_total", "help", {"t"});
  auto& h = r.histogram("h", "help", {0.5, 1.5}).labels({});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counters.labels({t % 2 == 0 ? "even" : "odd"}).inc();
        h.observe(i % 2 == 0 ? 1.0 : 2.0);
        if (i % 500 == 0) (void)r.render();  // scrapes while updating
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_DOUBLE_EQ(counters.labels({"even"}).value(), kThreads / 2 * kPerThread);
  EXPECT_DOUBLE_EQ(counters.labels({"odd"}).value(), kThreads / 2 * kPerThread);
  const auto s = h.snapshot();
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(s.cumulative[0], 0u);
  EXPECT_EQ(s.cumulative[1], s.count / 2);
  EXPECT_EQ(s.cumulative[2], s.count);
  EXPECT_DOUBLE_EQ(s.sum, kThreads * kPerThread * 1.5);
}
