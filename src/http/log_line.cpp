#include "http/log_line.h"

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace mmserve::http {
namespace {

using OrderedJson = nlohmann::ordered_json;

std::string rfc3339_utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buf;
}

double round3(double v) {
  return static_cast<double>(static_cast<int64_t>(v * 1000 + (v >= 0 ? 0.5 : -0.5))) / 1000;
}

}  // namespace

std::string format_log_line(const RequestLogEntry& e) {
  OrderedJson j;
  j["ts"] = rfc3339_utc(e.time);
  const bool failed_generation = e.generation && (e.generation->finish_reason == "internal_error" ||
                                                  e.generation->finish_reason == "timeout");
  j["level"] = e.status >= 500 || failed_generation ? "error" : e.status >= 400 ? "warn" : "info";
  j["msg"] = "request";
  j["id"] = e.id;
  j["method"] = e.method;
  j["path"] = e.path;
  j["status"] = e.status;
  j["duration_ms"] = round3(e.duration_ms);
  j["remote_addr"] = e.remote_addr;
  if (!e.endpoint.empty()) {
    j["endpoint"] = e.endpoint;
    j["route"] = e.route;
    j["task"] = e.task;
    if (!e.model.empty()) j["model"] = e.model;
    if (!e.caller.empty()) j["caller"] = e.caller;
    if (!e.data_class.empty()) j["data_class"] = e.data_class;
    if (!e.findings.empty()) j["findings"] = e.findings;
  }
  if (!e.error_type.empty()) j["error_type"] = e.error_type;
  if (!e.error_param.empty()) j["error_param"] = e.error_param;
  if (const auto& g = e.generation) {
    j["response_id"] = g->response_id;
    j["stream"] = g->stream;
    j["finish_reason"] = g->finish_reason;
    j["queue_ms"] = round3(g->queue_ms);
    if (g->ttft_ms) j["ttft_ms"] = round3(*g->ttft_ms);
    j["generate_ms"] = round3(g->generate_ms);
    j["prompt_tokens"] = g->prompt_tokens;
    j["cached_prompt_tokens"] = g->cached_prompt_tokens;
    j["completion_tokens"] = g->completion_tokens;
  }
  if (e.request_body) j["request_body"] = *e.request_body;
  if (e.output) j["output"] = *e.output;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mmserve::http
