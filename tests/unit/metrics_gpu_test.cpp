// GPU metrics through NVML loaded with dlopen: a stand-in NVML library (metrics_fake_nvml.cpp)
// exercises the present path on any machine; a missing or wrong library leaves no series.
#include <gtest/gtest.h>

#include "metrics/gpu_metrics.h"

using namespace mmserve::metrics;

TEST(MetricsGpu, MissingLibraryRegistersNothingAndSaysWhy) {
  Registry r;
  GpuMetrics gpu("/nonexistent/libnvidia-ml.so.1");
  EXPECT_FALSE(gpu.start(r));
  EXPECT_FALSE(gpu.active());
  EXPECT_TRUE(gpu.status().starts_with("GPU metrics off: cannot load /nonexistent/libnvidia-ml"))
      << gpu.status();
  gpu.refresh();  // harmless
  EXPECT_EQ(r.render(), "");
}

TEST(MetricsGpu, LibraryWithoutNvmlSymbolsIsRefused) {
  Registry r;
  GpuMetrics gpu("libm.so.6");  // loads, but is not NVML
  EXPECT_FALSE(gpu.start(r));
  EXPECT_NE(gpu.status().find("lacks nvmlInit_v2"), std::string::npos) << gpu.status();
  EXPECT_EQ(r.render(), "");
}

TEST(MetricsGpu, FakeNvmlExportsEveryGpu) {
  Registry r;
  GpuMetrics gpu(MMSERVE_FAKE_NVML);
  ASSERT_TRUE(gpu.start(r)) << gpu.status();
  EXPECT_EQ(gpu.status(), "GPU metrics on: 2 GPUs through NVML (Fake \"GPU\" 0, Fake \"GPU\" 1)");
  gpu.refresh();
  const std::string out = r.render();
  for (const char* line : {
           "mmserve_gpu_info{gpu=\"0\",name=\"Fake \\\"GPU\\\" 0\",uuid=\"GPU-fake-0\"} 1\n",
           "mmserve_gpu_info{gpu=\"1\",name=\"Fake \\\"GPU\\\" 1\",uuid=\"GPU-fake-1\"} 1\n",
           "mmserve_gpu_utilization_ratio{gpu=\"0\"} 0.37\n",
           "mmserve_gpu_utilization_ratio{gpu=\"1\"} 1\n",
           "mmserve_gpu_memory_used_bytes{gpu=\"0\"} 1073741824\n",
           "mmserve_gpu_memory_used_bytes{gpu=\"1\"} 2147483648\n",
           "mmserve_gpu_memory_total_bytes{gpu=\"0\"} 85899345920\n",
           "mmserve_gpu_power_watts{gpu=\"0\"} 123.5\n",
           "mmserve_gpu_temperature_celsius{gpu=\"1\"} 55\n",
       }) {
    EXPECT_NE(out.find(line), std::string::npos) << line << "\nin:\n" << out;
  }
  // GPU 1 has no power reading: its series is absent rather than 0.
  EXPECT_EQ(out.find("mmserve_gpu_power_watts{gpu=\"1\"}"), std::string::npos);
}
