// The HTTP front door: binds the socket, installs the routes, enforces body limits and the API
// key, and turns every failure into a JSON error. Health and readiness live here.
//
// Ownership: owns the httplib server and its thread pool; borrows the Runtime, which must
// outlive it. Threading: serve() blocks the calling thread; stop() may be called from any
// other thread (not from a signal handler).
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "runtime/runtime.h"

namespace mmserve::http {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 picks a free port
  size_t max_body_bytes = 32u << 20;
  std::string api_key;       // when set, /v1/* needs "Authorization: Bearer <key>"
  std::string admin_key;     // with api_key: what /models/load and /models/unload need
  int threads = 0;           // HTTP worker threads; 0 = enough for every slot and queue entry
  bool log_prompts = false;  // request log lines carry request bodies and generated text
};

class HttpServer {
 public:
  HttpServer(runtime::Runtime& runtime, HttpOptions options);
  ~HttpServer();

  // Binds the listening socket; returns the port (useful with port 0). Throws Error.
  int bind();
  // Serves until stop(); in-flight requests finish before it returns.
  void serve();
  void stop();

 private:
  runtime::Runtime& runtime_;
  HttpOptions options_;
  httplib::Server server_;
  std::atomic<int> listen_fd_{-1};
};

}  // namespace mmserve::http
