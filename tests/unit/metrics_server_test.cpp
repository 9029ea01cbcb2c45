// The mmserve metric set: what one request and one generation move.
#include <gtest/gtest.h>

#include <string>

#include "metrics/server_metrics.h"

using namespace mmserve::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST(MetricsServer, EveryRequiredFamilyIsDeclared) {
  ServerMetrics m;
  const std::string out = m.scrape();
  for (const char* family :
       {"mmserve_requests_total counter", "mmserve_request_duration_seconds histogram",
        "mmserve_queue_wait_seconds histogram", "mmserve_time_to_first_token_seconds histogram",
        "mmserve_inter_token_latency_seconds histogram", "mmserve_batch_size histogram",
        "mmserve_prompt_tokens_total counter", "mmserve_generated_tokens_total counter",
        "mmserve_audio_seconds_total counter", "mmserve_images_total counter",
        "mmserve_requests_running gauge", "mmserve_requests_waiting gauge",
        "mmserve_kv_cache_usage_ratio gauge", "mmserve_model_memory_bytes gauge",
        "mmserve_build_info gauge", "process_resident_memory_bytes gauge",
        "process_cpu_seconds_total counter"}) {
    EXPECT_NE(out.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family;
  }
  EXPECT_TRUE(has_line(out, "mmserve_audio_seconds_total 0"));
  EXPECT_TRUE(has_line(out, "mmserve_images_total 0"));
}

TEST(MetricsServer, RequestMovesCounterAndDuration) {
  ServerMetrics m;
  m.record_request("text-gen", "chat", "/v1/inference", "local", 200, 0.3);
  m.record_request("text-gen", "chat", "/v1/inference", "local", 200, 0.7);
  m.record_request("none", "", "/v1/inference", "local", 400, 0.001);  // failed before a model
  const std::string out = m.scrape();
  EXPECT_TRUE(
      has_line(out,
               "mmserve_requests_total{task=\"text-gen\",model=\"chat\",endpoint=\"/v1/inference\","
               "route=\"local\",status=\"200\"} 2"));
  EXPECT_TRUE(
      has_line(out,
               "mmserve_requests_total{task=\"none\",model=\"none\",endpoint=\"/v1/inference\","
               "route=\"local\",status=\"400\"} 1"));
  EXPECT_TRUE(
      has_line(out, "mmserve_request_duration_seconds_count{task=\"text-gen\",model=\"chat\"} 2"));
  EXPECT_TRUE(
      has_line(out, "mmserve_request_duration_seconds_sum{task=\"text-gen\",model=\"chat\"} 1"));
  EXPECT_TRUE(has_line(
      out,
      "mmserve_request_duration_seconds_bucket{task=\"text-gen\",model=\"chat\",le=\"0.25\"} 0"));
  EXPECT_TRUE(has_line(
      out,
      "mmserve_request_duration_seconds_bucket{task=\"text-gen\",model=\"chat\",le=\"0.5\"} 1"));
  EXPECT_TRUE(has_line(
      out, "mmserve_request_duration_seconds_bucket{task=\"text-gen\",model=\"chat\",le=\"1\"} 2"));
}

TEST(MetricsServer, GenerationMovesTokensAndLatencies) {
  ServerMetrics m;
  m.record_generation({.task = "text-gen",
                       .model = "chat",
                       .queue_seconds = 0.002,
                       .first_token_seconds = 0.02,
                       .generate_seconds = 0.9,
                       .prompt_tokens = 12,
                       .cached_prompt_tokens = 4,
                       .completion_tokens = 10});
  // Ended before its first token (cancelled while queued): no TTFT, no inter-token sample.
  m.record_generation({.task = "text-gen", .model = "chat", .queue_seconds = 0.5});
  m.record_generation({.task = "text-gen", .model = "other", .prompt_tokens = 3});
  const std::string out = m.scrape();
  EXPECT_TRUE(has_line(out, "mmserve_prompt_tokens_total{model=\"chat\"} 12"));
  EXPECT_TRUE(has_line(out, "mmserve_cached_prompt_tokens_total{model=\"chat\"} 4"));
  EXPECT_TRUE(has_line(out, "mmserve_generated_tokens_total{model=\"chat\"} 10"));
  EXPECT_TRUE(has_line(out, "mmserve_prompt_tokens_total{model=\"other\"} 3"));
  EXPECT_TRUE(
      has_line(out, "mmserve_queue_wait_seconds_count{task=\"text-gen\",model=\"chat\"} 2"));
  EXPECT_TRUE(has_line(out, "mmserve_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(out, "mmserve_time_to_first_token_seconds_sum 0.02"));
  // Ten tokens, nine intervals of 0.1 s on average.
  EXPECT_TRUE(has_line(out, "mmserve_inter_token_latency_seconds_count 9"));
  EXPECT_TRUE(has_line(out, "mmserve_inter_token_latency_seconds_bucket{le=\"0.075\"} 0"));
  EXPECT_TRUE(has_line(out, "mmserve_inter_token_latency_seconds_bucket{le=\"0.1\"} 9"));
}

TEST(MetricsServer, DecodeStepsAndFeatureCounters) {
  ServerMetrics m;
  m.record_decode_step(3);
  m.record_decode_step(0);  // an idle step is not a batch
  m.add_audio_seconds(12.5);
  m.add_images(2);
  m.set_task_load("text-gen", "chat", 2, 5, 64);
  m.set_kv_cache_usage("chat", 0.25);
  m.set_model_memory("stories260K", "CPU", 1171200);
  m.set_build_info("0.1.0", "b1", "w1", "CPU");
  const std::string out = m.scrape();
  EXPECT_TRUE(has_line(out, "mmserve_batch_size_count 1"));
  EXPECT_TRUE(has_line(out, "mmserve_batch_size_bucket{le=\"2\"} 0"));
  EXPECT_TRUE(has_line(out, "mmserve_batch_size_bucket{le=\"3\"} 1"));
  EXPECT_TRUE(has_line(out, "mmserve_audio_seconds_total 12.5"));
  EXPECT_TRUE(has_line(out, "mmserve_images_total 2"));
  EXPECT_TRUE(has_line(out, "mmserve_requests_running{task=\"text-gen\",model=\"chat\"} 2"));
  EXPECT_TRUE(has_line(out, "mmserve_requests_waiting{task=\"text-gen\",model=\"chat\"} 5"));
  EXPECT_TRUE(has_line(out, "mmserve_kv_cache_usage_ratio{model=\"chat\"} 0.25"));
  EXPECT_TRUE(
      has_line(out, "mmserve_model_memory_bytes{model=\"stories260K\",device=\"CPU\"} 1171200"));
  EXPECT_TRUE(has_line(out,
                       "mmserve_build_info{version=\"0.1.0\",llama_cpp=\"b1\",whisper_cpp=\"w1\","
                       "backend=\"CPU\"} 1"));
}
