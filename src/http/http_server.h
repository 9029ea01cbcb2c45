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
#include <vector>

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
  // HTTPS: both PEM files, or neither (plain HTTP).
  std::string tls_cert, tls_key;
  // Origins a browser page may call the API from (CORS); "*" is any. Empty: no CORS headers.
  std::vector<std::string> cors_origins;
  bool metrics_auth = false;  // /metrics needs a key (admin, or one whose endpoints list it)
};

// What the pipeline is asked for a path: API calls (/v1/...), the admin endpoints (/models/...)
// and, when protected, /metrics are admitted through it; the probes are not.
std::optional<pipeline::Operation> operation_of(std::string_view method, std::string_view path,
                                                bool metrics_auth = false);

// A route the server answers, and who may call it: "public" (no key: the probes, and /metrics
// unless protected), "key" (any valid key), "admin" (an admin key), "metrics" (/metrics when
// protected). For `serve --list-routes`, and the test that tries every route without a key.
struct RouteInfo {
  std::string method, pattern, access;
};

class HttpServer {
 public:
  // Throws Error(kInvalidInput, "--tls-cert") when the certificate or key cannot be loaded.
  // `capture`: the capture writer (POST /v1/feedback); null without one.
  HttpServer(runtime::Runtime& runtime, const pipeline::Pipeline& pipeline, HttpOptions options,
             UsageSources usage = {}, stages::CaptureWriter* capture = nullptr);
  ~HttpServer();

  // Binds the listening socket; returns the port (useful with port 0). Throws Error.
  int bind();
  // Serves until stop(); in-flight requests finish before it returns.
  void serve();
  void stop();

  const std::vector<RouteInfo>& routes() const { return routes_; }
  bool tls() const { return !options_.tls_cert.empty(); }

 private:
  void install(Route route);
  void install_cors();

  runtime::Runtime& runtime_;
  const pipeline::Pipeline& pipeline_;
  HttpOptions options_;
  Services services_;
  std::unique_ptr<httplib::Server> server_;  // an httplib::SSLServer with TLS
  std::vector<RouteInfo> routes_;
  std::atomic<int> listen_fd_{-1};
};

}  // namespace mmserve::http
