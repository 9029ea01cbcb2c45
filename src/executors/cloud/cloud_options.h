// What the cloud executor (cloud_executor.h) needs to reach an OpenAI-compatible endpoint and
// how hard it tries: where, with which key, which upstream model answers which call, and the
// limits of its retries and of its circuit breaker; and the base URL taken apart. Plain data:
// filled by the CLI (cli/) from its flags, then copied into the executor, which never changes
// it. parse_endpoint() is pure and thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace mmserve::executors {

struct CloudOptions {
  // e.g. "http://127.0.0.1:9000/v1" or "https://api.openai.com/v1": the executor POSTs to
  // base_url + "/chat/completions".
  std::string base_url;
  // Sent as "Authorization: Bearer ..." when not empty (the CLI resolves it from a file or an
  // environment variable; it is never logged).
  std::string api_key;
  // The upstream model of a call whose model has no mapping; when empty too, the call's own
  // model name is sent.
  std::string default_model;
  // The call's model name (Call::model, "" for the task's default) -> the upstream model.
  std::map<std::string, std::string> model_map;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds read_timeout{30000};  // longest silence while reading
  // Further attempts after the first, on 429, 5xx, a connect error or a timeout before any byte
  // of an answer.
  int retries = 2;
  std::chrono::milliseconds backoff{200};       // wait before the first retry; doubles each
                                                // time, with jitter
  std::chrono::milliseconds max_backoff{5000};  // cap, Retry-After included (seconds form)
  int breaker_failures = 5;                     // consecutive failed attempts that open the breaker
  std::chrono::milliseconds breaker_cooldown{30000};  // open this long, then one trial call
  bool fallback_local = true;  // when the cloud fails: run locally; false: answer the error
};

// A base URL ("https://api.example.com:8443/v1") as httplib::Client's "scheme://host:port"
// and the path prefix ("/v1", or "" for none).
struct Endpoint {
  std::string origin;       // "https://api.example.com:8443"
  std::string path_prefix;  // "/v1"
  std::string chat_path() const { return path_prefix + "/chat/completions"; }
};
// Throws Error(kInvalidInput) when `base_url` is not http(s)://host[:port][/path].
Endpoint parse_endpoint(const std::string& base_url);

}  // namespace mmserve::executors
