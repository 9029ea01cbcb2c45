// Route registration, one function per API family. Handlers translate HTTP <-> scheduler
// requests; they hold no state of their own beyond what the Runtime owns.
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>

#include "runtime/runtime.h"

namespace mmserve::http {

// Runs `handler`, turning any exception into the JSON error response. Counts the request as
// in flight while it runs.
void guarded(httplib::Response& res, const std::function<void()>& handler);

// Requests being handled or streamed right now, for the shutdown drain. Thread-safe.
std::atomic<int>& in_flight_requests();

// A fresh request id with the given prefix ("inf-", "chatcmpl-", ...).
std::string new_request_id(const char* prefix);

// A lease on the model for the request on this thread (Runtime::acquire), noted for its log
// line and metrics.
runtime::ModelLease acquire_model(runtime::Runtime& runtime, runtime::Task task,
                                  std::string_view model);

void register_inference_routes(httplib::Server& server, runtime::Runtime& runtime);
void register_openai_routes(httplib::Server& server, runtime::Runtime& runtime);
// POST /v1/audio/transcriptions and /v1/audio/translations (audio_routes.cpp).
void register_audio_routes(httplib::Server& server, runtime::Runtime& runtime);

}  // namespace mmserve::http
