// A small metrics registry of our own (Debian packages no prometheus-cpp): counters, gauges and
// histograms, optionally labelled, rendered in the Prometheus text exposition format.
//
// Ownership: the Registry owns its families, a family owns its children (one per set of label
// values). References returned by Registry::counter/gauge/histogram and Family::labels stay
// valid for the Registry's lifetime (until Family::remove for that child), so hot paths may
// look a child up once and keep it.
//
// Threading: everything here is thread-safe. Counter and Gauge are lock-free atomics;
// a Histogram takes its own small mutex per observation, so that a scrape always sees buckets,
// _sum and _count from the same instant (the +Inf bucket always equals _count). Families and
// the registry take a mutex only to add, remove or list children.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_annotations.h"

namespace mmserve::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };
const char* type_name(MetricType type);

// Monotonically increasing value. Negative and NaN increments are ignored.
class Counter {
 public:
  void inc(double amount = 1);
  // For a counter that mirrors a monotonic total kept elsewhere (the kernel's CPU time, a
  // dropped-lines count): sets the value. Do not mix with inc() on the same child.
  void mirror(double total) { value_.store(total, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Buckets are upper bounds, inclusive ("le"), strictly increasing; +Inf is implicit.
class Histogram {
 public:
  explicit Histogram(std::shared_ptr<const std::vector<double>> bounds);

  // Records `value` `times` times at once (one lock). NaN is ignored.
  void observe(double value, uint64_t times = 1);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  const std::shared_ptr<const std::vector<double>> bounds_;
  mutable Mutex mutex_;
  std::vector<uint64_t> counts_ GUARDED_BY(mutex_);  // per bucket, not cumulative
  double sum_ GUARDED_BY(mutex_) = 0;
  uint64_t count_ GUARDED_BY(mutex_) = 0;
};

// Buckets that grow by `factor` from `start`: {start, start*factor, ...}, `count` of them.
std::vector<double> exponential_buckets(double start, double factor, int count);

// One metric name with its help, type and label names; its children hold the values.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends this family in the text format: HELP, TYPE, then one block per child in label
  // order. A family without children renders HELP and TYPE only.
  void render(std::string& out) const;

 protected:
  // Throws Error(kInternal) when `values` does not have one value per label name.
  void check_arity(const std::vector<std::string>& values) const;
  // Appends the sample lines of every child.
  virtual void render_children(std::string& out) const = 0;
  // `name{a="x",b="y"}`, with `extra` (already formatted, e.g. le="0.5") appended.
  std::string series(const std::string& suffix, const std::vector<std::string>& values,
                     const std::string& extra = {}) const;

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

template <class Metric>
class Family final : public FamilyBase {
 public:
  using Factory = std::function<std::unique_ptr<Metric>()>;
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         Factory factory)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        factory_(std::move(factory)) {}

  // The child for these label values (one per label name, in order), created at first use.
  Metric& labels(const std::vector<std::string>& values) {
    check_arity(values);
    MutexLock lock(mutex_);
    auto& child = children_[values];
    if (!child) {
      child = factory_();
    }
    return *child;
  }
  // Drops a child (a GPU that went away); references to it become dangling.
  void remove(const std::vector<std::string>& values) {
    MutexLock lock(mutex_);
    children_.erase(values);
  }

 private:
  void render_children(std::string& out) const override;

  const Factory factory_;
  mutable Mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_ GUARDED_BY(mutex_);
};

// Defined in registry.cpp, one per metric type.
template <>
void Family<Counter>::render_children(std::string& out) const;
template <>
void Family<Gauge>::render_children(std::string& out) const;
template <>
void Family<Histogram>::render_children(std::string& out) const;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering a name twice, or an invalid metric or label name, throws Error(kInternal): it
  // is a programming error. A family without label names gets its one child at once, so it is
  // exported (as 0) before its first update.
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<double> buckets,
                               std::vector<std::string> label_names = {});

  bool contains(const std::string& name) const;
  // Every family in registration order, in the text exposition format.
  std::string render() const;

 private:
  void add(std::unique_ptr<FamilyBase> family);

  mutable Mutex mutex_;
  std::vector<std::unique_ptr<FamilyBase>> families_ GUARDED_BY(mutex_);
};

}  // namespace mmserve::metrics
