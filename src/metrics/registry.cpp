#include "metrics/registry.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "metrics/text_format.h"

namespace mmserve::metrics {

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

void Counter::inc(double amount) {
  if (!(amount > 0)) return;  // a counter never goes down; NaN compares false
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_->size() + 1, 0) {}

void Histogram::observe(double value, uint64_t times) {
  if (std::isnan(value) || times == 0) return;
  // "le" buckets: the first bound not below the value; past the last bound is +Inf.
  const auto bucket = static_cast<size_t>(
      std::lower_bound(bounds_->begin(), bounds_->end(), value) - bounds_->begin());
  MutexLock lock(mutex_);
  counts_[bucket] += times;
  sum_ += value * static_cast<double>(times);
  count_ += times;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  MutexLock lock(mutex_);
  s.cumulative.reserve(counts_.size());
  uint64_t running = 0;
  for (const uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  std::vector<double> out;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) out.push_back(bound);
  return out;
}

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {
  if (!is_valid_metric_name(name_)) {
    throw Error(ErrorCode::kInternal, "invalid metric name '" + name_ + "'", name_);
  }
  for (size_t i = 0; i < label_names_.size(); ++i) {
    const auto& label = label_names_[i];
    if (!is_valid_label_name(label) || (type_ == MetricType::kHistogram && label == "le") ||
        std::find(label_names_.begin(), label_names_.begin() + static_cast<ptrdiff_t>(i), label) !=
            label_names_.begin() + static_cast<ptrdiff_t>(i)) {
      throw Error(ErrorCode::kInternal,
                  "invalid or repeated label name '" + label + "' in metric " + name_, name_);
    }
  }
}

void FamilyBase::check_arity(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size()) {
    throw Error(ErrorCode::kInternal,
                "metric " + name_ + " takes " + std::to_string(label_names_.size()) +
                    " label values, got " + std::to_string(values.size()),
                name_);
  }
}

std::string FamilyBase::series(const std::string& suffix, const std::vector<std::string>& values,
                               const std::string& extra) const {
  std::string out = name_ + suffix;
  if (values.empty() && extra.empty()) return out;
  out += '{';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i] + "=\"" + escape_label_value(values[i]) + '"';
  }
  if (!extra.empty()) {
    if (!values.empty()) out += ',';
    out += extra;
  }
  out += '}';
  return out;
}

void FamilyBase::render(std::string& out) const {
  out += "# HELP " + name_ + ' ' + escape_help(help_) + '\n';
  out += "# TYPE " + name_ + ' ' + type_name(type_) + '\n';
  render_children(out);
}

template <>
void Family<Counter>::render_children(std::string& out) const {
  MutexLock lock(mutex_);
  for (const auto& [values, child] : children_) {
    out += series("", values) + ' ' + format_value(child->value()) + '\n';
  }
}

template <>
void Family<Gauge>::render_children(std::string& out) const {
  MutexLock lock(mutex_);
  for (const auto& [values, child] : children_) {
    out += series("", values) + ' ' + format_value(child->value()) + '\n';
  }
}

template <>
void Family<Histogram>::render_children(std::string& out) const {
  MutexLock lock(mutex_);
  for (const auto& [values, child] : children_) {
    const auto snap = child->snapshot();
    const auto& bounds = child->bounds();
    for (size_t i = 0; i <= bounds.size(); ++i) {
      const std::string le = i < bounds.size() ? format_value(bounds[i]) : "+Inf";
      out += series("_bucket", values, "le=\"" + le + '"') + ' ' +
             std::to_string(snap.cumulative[i]) + '\n';
    }
    out += series("_sum", values) + ' ' + format_value(snap.sum) + '\n';
    out += series("_count", values) + ' ' + std::to_string(snap.count) + '\n';
  }
}

void Registry::add(std::unique_ptr<FamilyBase> family) {
  MutexLock lock(mutex_);
  for (const auto& f : families_) {
    if (f->name() == family->name()) {
      throw Error(ErrorCode::kInternal, "metric " + family->name() + " is registered twice",
                  family->name());
    }
  }
  families_.push_back(std::move(family));
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  const bool unlabelled = label_names.empty();
  auto family =
      std::make_unique<Family<Counter>>(name, help, MetricType::kCounter, std::move(label_names),
                                        [] { return std::make_unique<Counter>(); });
  auto& ref = *family;
  add(std::move(family));
  if (unlabelled) ref.labels({});
  return ref;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names) {
  const bool unlabelled = label_names.empty();
  auto family =
      std::make_unique<Family<Gauge>>(name, help, MetricType::kGauge, std::move(label_names),
                                      [] { return std::make_unique<Gauge>(); });
  auto& ref = *family;
  add(std::move(family));
  if (unlabelled) ref.labels({});
  return ref;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<double> buckets,
                                       std::vector<std::string> label_names) {
  const bool increasing = std::adjacent_find(buckets.begin(), buckets.end(),
                                             std::greater_equal<double>()) == buckets.end();
  const bool finite =
      std::all_of(buckets.begin(), buckets.end(), [](double b) { return std::isfinite(b); });
  if (buckets.empty() || !increasing || !finite) {
    throw Error(ErrorCode::kInternal,
                "histogram " + name + " needs finite, strictly increasing bucket bounds", name);
  }
  const bool unlabelled = label_names.empty();
  auto bounds = std::make_shared<const std::vector<double>>(std::move(buckets));
  auto family = std::make_unique<Family<Histogram>>(
      name, help, MetricType::kHistogram, std::move(label_names),
      [bounds] { return std::make_unique<Histogram>(bounds); });
  auto& ref = *family;
  add(std::move(family));
  if (unlabelled) ref.labels({});
  return ref;
}

bool Registry::contains(const std::string& name) const {
  MutexLock lock(mutex_);
  return std::any_of(families_.begin(), families_.end(),
                     [&](const auto& f) { return f->name() == name; });
}

std::string Registry::render() const {
  std::string out;
  MutexLock lock(mutex_);
  for (const auto& f : families_) f->render(out);
  return out;
}

}  // namespace mmserve::metrics
