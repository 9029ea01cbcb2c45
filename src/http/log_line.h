// The request log's line: what one request did, and its JSON form (one line, fields in a fixed
// order). Pure and thread-safe; request_log.h gathers the entries.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace mmserve::http {

// One log line's content.
struct RequestLogEntry {
  std::chrono::system_clock::time_point time;
  std::string id, method, path, remote_addr;
  int status = 0;
  double duration_ms = 0;
  std::string endpoint, route, task;  // endpoint empty: not an inference request
  std::string model;                  // empty: failed before a model was chosen
  std::string caller;                 // who the authentication stage found (never the key)
  std::string data_class;             // the client's X-Data-Class hint; empty: none given
  std::string findings;               // the privacy stage's "type:count,..." (never values)
  std::string error_type, error_param;
  struct Generation {
    std::string response_id;
    bool stream = false;
    std::string finish_reason;
    double queue_ms = 0;
    std::optional<double> ttft_ms;  // queue wait included; absent when no token came
    double generate_ms = 0;
    int64_t prompt_tokens = 0, cached_prompt_tokens = 0, completion_tokens = 0;
  };
  std::optional<Generation> generation;
  std::optional<std::string> request_body, output;  // capture only
};
// The JSON line (no line feed). Pure; invalid UTF-8 in strings is replaced, not fatal.
std::string format_log_line(const RequestLogEntry& entry);

}  // namespace mmserve::http
