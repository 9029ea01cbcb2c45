// The process_* series read from /proc/self.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <vector>

#include "metrics/process_metrics.h"

using namespace mmserve::metrics;

TEST(MetricsProcess, ReadsPlausibleFigures) {
  const auto s = read_process_sample();
  ASSERT_TRUE(s.resident_bytes && s.virtual_bytes && s.cpu_seconds && s.start_time_seconds &&
              s.open_fds);
  EXPECT_GT(*s.resident_bytes, 1 << 20);  // a gtest binary takes more than a MiB
  EXPECT_GE(*s.virtual_bytes, *s.resident_bytes);
  EXPECT_GE(*s.cpu_seconds, 0);
  EXPECT_GE(*s.open_fds, 3);  // stdin, stdout, stderr
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Started before now, and (boot time granularity is one second) not in the future.
  EXPECT_LE(*s.start_time_seconds, now + 1);
  EXPECT_GT(*s.start_time_seconds, now - 7 * 24 * 3600);
}

TEST(MetricsProcess, ResidentMemoryFollowsAllocation) {
  const double before = *read_process_sample().resident_bytes;
  std::vector<char> block(64 << 20, 1);  // touched, so resident
  const double after = *read_process_sample().resident_bytes;
  EXPECT_GT(after - before, 32 << 20);
  EXPECT_EQ(block[block.size() - 1], 1);
}

TEST(MetricsProcess, CpuSecondsGrowWithWork) {
  const double before = *read_process_sample().cpu_seconds;
  volatile double x = 0;
  double cpu = before;
  // Spin until the kernel's tick-granular counter moves: bounded by work done, not by time.
  for (int round = 0; round < 2000 && cpu <= before; ++round) {
    for (int i = 0; i < 1000000; ++i) x = x + 1.0 / (i + 1);
    cpu = *read_process_sample().cpu_seconds;
  }
  EXPECT_GT(cpu, before);
}

TEST(MetricsProcess, RegistersTheStandardNames) {
  Registry r;
  ProcessMetrics p(r);
  p.refresh();
  const std::string out = r.render();
  for (const char* name :
       {"# TYPE process_cpu_seconds_total counter", "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_virtual_memory_bytes gauge", "# TYPE process_start_time_seconds gauge",
        "# TYPE process_open_fds gauge", "# TYPE process_max_fds gauge"}) {
    EXPECT_NE(out.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(out.find("process_resident_memory_bytes 0\n"), std::string::npos) << out;
}
