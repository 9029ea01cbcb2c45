// The HTTP front door: binds the socket, adapts cpp-httplib to our handlers' own types
// (exchange.h), admits every API call through the pipeline's first step before its body is
// read (authentication, pipeline/pipeline.h), enforces body limits, and turns every failure
// into a JSON error. No exception reaches cpp-httplib.
//
// Ownership: owns the httplib server and its thread pool; borrows the Runtime and the
// Pipeline, which must outlive it. Threading: serve() blocks the calling thread; stop() may be
// called from any other thread (not from a signal handler).
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "http/routes.h"
#include "pipeline/pipeline.h"
#include "runtime/runtime.h"

namespace mmserve::http {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 picks a free port
  size_t max_body_bytes = 32u << 20;
  int threads = 0;           // HTTP worker threads; 0 = enough for every slot and queue entry
  bool log_prompts = false;  // request log lines carry request bodies and generated text
};

// What the pipeline is asked for a path: API calls (/v1/...) and the admin endpoints
// (/models/...) are admitted through it; probes and /metrics are not.
std::optional<pipeline::Operation> operation_of(std::string_view method, std::string_view path);

class HttpServer {
 public:
  HttpServer(runtime::Runtime& runtime, const pipeline::Pipeline& pipeline, HttpOptions options);
  ~HttpServer();

  // Binds the listening socket; returns the port (useful with port 0). Throws Error.
  int bind();
  // Serves until stop(); in-flight requests finish before it returns.
  void serve();
  void stop();

 private:
  void install(Route route);

  runtime::Runtime& runtime_;
  const pipeline::Pipeline& pipeline_;
  HttpOptions options_;
  Services services_;
  httplib::Server server_;
  std::atomic<int> listen_fd_{-1};
};

}  // namespace mmserve::http
