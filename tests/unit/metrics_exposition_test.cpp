// The Prometheus text exposition format: exact output, label and help escaping, number
// formatting, and histogram buckets that are cumulative and end in +Inf == _count.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "metrics/registry.h"
#include "metrics/text_format.h"

using namespace mmserve::metrics;

TEST(MetricsExposition, CounterAndGaugeExactText) {
  Registry r;
  r.counter("mm_requests_total", "Requests answered.", {"task", "status"})
      .labels({"text-gen", "200"})
      .inc(3);
  r.gauge("mm_ratio", "A ratio.").labels({}).set(0.25);
  EXPECT_EQ(r.render(),
            "# HELP mm_requests_total Requests answered.\n"
            "# TYPE mm_requests_total counter\n"
            "mm_requests_total{task=\"text-gen\",status=\"200\"} 3\n"
            "# HELP mm_ratio A ratio.\n"
            "# TYPE mm_ratio gauge\n"
            "mm_ratio 0.25\n");
}

TEST(MetricsExposition, UnlabelledFamiliesExportZeroAtOnceLabelledOnesNothing) {
  Registry r;
  r.counter("mm_images_total", "Images.");
  r.counter("mm_by_task_total", "By task.", {"task"});
  EXPECT_EQ(r.render(),
            "# HELP mm_images_total Images.\n"
            "# TYPE mm_images_total counter\n"
            "mm_images_total 0\n"
            "# HELP mm_by_task_total By task.\n"
            "# TYPE mm_by_task_total counter\n");
}

TEST(MetricsExposition, LabelValuesAreEscaped) {
  Registry r;
  r.gauge("mm_info", "Info.", {"name"}).labels({"a \"quoted\" back\\slash\nnewline"}).set(1);
  const std::string out = r.render();
  EXPECT_NE(out.find("mm_info{name=\"a \\\"quoted\\\" back\\\\slash\\nnewline\"} 1\n"),
            std::string::npos)
      << out;
}

TEST(MetricsExposition, HelpIsEscaped) {
  Registry r;
  r.gauge("mm_g", "line one\nline \"two\" \\ end");
  EXPECT_NE(r.render().find("# HELP mm_g line one\\nline \"two\" \\\\ end\n"), std::string::npos);
}

TEST(MetricsExposition, EscapingFunctions) {
  EXPECT_EQ(escape_label_value(R"(a"b\c)"), R"(a\"b\\c)");
  EXPECT_EQ(escape_label_value("x\ny"), "x\\ny");
  EXPECT_EQ(escape_label_value("日本語"), "日本語");  // UTF-8 passes through
  EXPECT_EQ(escape_help(R"(say "hi"\)"), R"(say "hi"\\)");
}

TEST(MetricsExposition, NumberFormatting) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-0.0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.005), "0.005");
  EXPECT_EQ(format_value(-1.5), "-1.5");
  EXPECT_EQ(format_value(INFINITY), "+Inf");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_value(NAN), "NaN");
  EXPECT_EQ(std::stod(format_value(0.1 + 0.2)), 0.1 + 0.2);  // round-trips exactly
  EXPECT_EQ(std::stod(format_value(1e300)), 1e300);
}

TEST(MetricsExposition, NameRules) {
  EXPECT_TRUE(is_valid_metric_name("mmserve_requests_total"));
  EXPECT_TRUE(is_valid_metric_name("job:rate:5m"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("9lives"));
  EXPECT_FALSE(is_valid_metric_name("a.b"));
  EXPECT_TRUE(is_valid_label_name("task"));
  EXPECT_FALSE(is_valid_label_name("job:x"));
  EXPECT_FALSE(is_valid_label_name("__name__"));
}

TEST(MetricsExposition, HistogramExactText) {
  Registry r;
  auto& h = r.histogram("mm_wait_seconds", "Wait.", {0.1, 1}, {"task"}).labels({"text-gen"});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(0.5);
  h.observe(3);
  EXPECT_EQ(r.render(),
            "# HELP mm_wait_seconds Wait.\n"
            "# TYPE mm_wait_seconds histogram\n"
            "mm_wait_seconds_bucket{task=\"text-gen\",le=\"0.1\"} 1\n"
            "mm_wait_seconds_bucket{task=\"text-gen\",le=\"1\"} 3\n"
            "mm_wait_seconds_bucket{task=\"text-gen\",le=\"+Inf\"} 4\n"
            "mm_wait_seconds_sum{task=\"text-gen\"} 4.05\n"
            "mm_wait_seconds_count{task=\"text-gen\"} 4\n");
}

TEST(MetricsExposition, UnlabelledHistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.histogram("mm_batch_size", "Batch.", {1, 2, 4, 8}).labels({});
  for (int i = 1; i <= 20; ++i) h.observe(i % 9);  // 0..8, some on the bounds exactly
  std::istringstream lines(r.render());
  std::vector<double> buckets;
  double count = -1;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("mm_batch_size_bucket{le=")) {
      EXPECT_EQ(line.find("mm_batch_size_bucket{le=\""), 0u);
      buckets.push_back(std::stod(line.substr(line.rfind(' ') + 1)));
    } else if (line.starts_with("mm_batch_size_count ")) {
      count = std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  ASSERT_EQ(buckets.size(), 5u);  // four bounds and +Inf
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_LE(buckets[i - 1], buckets[i]);
  EXPECT_EQ(buckets.back(), 20);
  EXPECT_EQ(count, 20);
  EXPECT_NE(r.render().find("mm_batch_size_bucket{le=\"+Inf\"} 20\n"), std::string::npos);
}

TEST(MetricsExposition, ChildrenRenderInLabelOrder) {
  Registry r;
  auto& f = r.counter("mm_c_total", "C.", {"k"});
  f.labels({"b"}).inc();
  f.labels({"a"}).inc();
  const auto out = r.render();
  EXPECT_LT(out.find("k=\"a\""), out.find("k=\"b\""));
}

TEST(MetricsExposition, RemovedChildDisappears) {
  Registry r;
  auto& f = r.gauge("mm_g", "G.", {"gpu"});
  f.labels({"0"}).set(1);
  f.labels({"1"}).set(2);
  f.remove({"0"});
  const auto out = r.render();
  EXPECT_EQ(out.find("gpu=\"0\""), std::string::npos);
  EXPECT_NE(out.find("mm_g{gpu=\"1\"} 2\n"), std::string::npos);
}
