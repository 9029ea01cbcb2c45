// The routes of the API, one function per family, each returning its handlers. Handlers
// translate an HTTP request into a typed call (pipeline/call.h), run it through the pipeline
// and translate the typed result back; they hold no state of their own beyond what the
// Runtime owns. They are written against exchange.h's types: http_server.cpp installs them on
// cpp-httplib, a unit test can call them directly.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "http/exchange.h"
#include "pipeline/executor.h"
#include "pipeline/pipeline.h"
#include "runtime/runtime.h"
#include "stages/capture/capture_writer.h"
#include "stages/quota/quota_stage.h"
#include "store/audit_store.h"
#include "store/key_store.h"

namespace mmserve::http {

// What GET /v1/usage reads: the database's audit log and keys, and the quotas' windows. All
// null on a server without a database.
struct UsageSources {
  const store::AuditStore* audit = nullptr;
  const store::KeyStore* keys = nullptr;
  const stages::QuotaStage* quotas = nullptr;
};

// What handlers use; borrowed, outlives the server.
struct Services {
  runtime::Runtime& runtime;
  const pipeline::Pipeline& pipeline;
  UsageSources usage;
  // POST /v1/feedback's store and the captures still queued; null without serve --capture-db.
  stages::CaptureWriter* capture = nullptr;
};

using Handler = std::function<void(const ApiRequest&, ApiResponse&, Exchange&)>;

struct Route {
  const char* method;   // "GET" or "POST"
  std::string pattern;  // a path, or a regex whose captures become ApiRequest::path_params
  Handler handler;
};

// Runs `handler`, turning any exception into the JSON error response. Counts the request as
// in flight while it runs.
void guarded(ApiResponse& res, const std::function<void()>& handler);

// Requests being handled or streamed right now, for the shutdown drain. Thread-safe.
std::atomic<int>& in_flight_requests();

// A fresh response id with the given prefix ("inf-", "chatcmpl-", ...).
std::string new_request_id(const char* prefix);

// The call's stages and its executor (Pipeline::submit); notes the model and route for the
// request's log line and metrics.
pipeline::Submission submit_call(const Services& services, Exchange& exchange);

// POST /v1/inference (inference_routes.cpp).
std::vector<Route> inference_routes(const Services& services);
// POST /v1/completions (openai_routes.cpp).
std::vector<Route> openai_routes(const Services& services);
// POST /v1/chat/completions (chat_routes.cpp).
std::vector<Route> chat_routes(const Services& services);
// POST /v1/responses (responses_routes.cpp).
std::vector<Route> responses_routes(const Services& services);
// POST /v1/audio/transcriptions and /v1/audio/translations (audio_routes.cpp).
std::vector<Route> audio_routes(const Services& services);
// POST /v1/embeddings (embedding_routes.cpp).
std::vector<Route> embedding_routes(const Services& services);
// POST /v1/privacy/scan (privacy_routes.cpp).
std::vector<Route> privacy_routes(const Services& services);
// GET /v1/usage (usage_routes.cpp).
std::vector<Route> usage_routes(const Services& services);
// POST /v1/feedback (feedback_routes.cpp).
std::vector<Route> feedback_routes(const Services& services);
// GET /health and /ready (health_routes.cpp).
std::vector<Route> health_routes(const Services& services);

}  // namespace mmserve::http
