// Per-request observability at the HTTP edge: the X-Request-Id (accepted or generated, and
// echoed on every response), the request metrics (mmserve_requests_total and
// mmserve_request_duration_seconds) and one JSON line per request on stderr. The line never
// holds prompt or output text unless capture is switched on (`mmserve serve --log-prompts`).
//
// A request is counted when its response is complete and before its last bytes are sent, so a
// client that has its answer sees it in /metrics: a plain response in before_response(), a
// stream when its closing events are made (counted_stream_generation), a stream cut short in
// after_response(). The log line is written after the response, with the full duration.
//
// Threading: httplib runs a request's pre-routing hook, handler, content provider, post-routing
// hook and logger on one worker thread, one request after another, so the record of the request
// in progress lives in a thread_local slot that only that thread touches. The metrics and the
// log sink are thread-safe.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/log_line.h"
#include "http/streaming.h"
#include "scheduler/generation.h"

namespace mmserve::http {

inline constexpr const char* kRequestIdHeader = "X-Request-Id";
inline constexpr size_t kMaxRequestIdLength = 128;

// A client's X-Request-Id with every character outside [A-Za-z0-9._:-] removed (no header or
// log injection) and cut to kMaxRequestIdLength; empty when nothing usable is left.
std::string sanitize_request_id(std::string_view raw);
// A fresh random id in the UUID version 4 text form.
std::string generate_request_id();

// For route handlers, about the request on this thread.
// The task it asked for ("text-gen", ...), once the handler knows it is a valid one.
void note_task(std::string_view task);
// The model serving it (the registry's name), for the log line and the metrics.
void note_model(std::string_view model);
// The generation serving it, its response id ("chatcmpl-...") and whether it is streamed.
void note_generation(std::shared_ptr<scheduler::Generation> generation, std::string response_id,
                     bool stream);
// stream_generation(), counting the request when the stream's closing events are made.
void counted_stream_generation(httplib::Response& res,
                               std::shared_ptr<scheduler::Generation> generation,
                               StreamFormat format);

struct RequestLogOptions {
  bool capture_text = false;  // add the request body and the generated text to the log line
};

// HttpServer's hooks: pre-routing, post-routing (just before the response is written) and the
// logger (after it is written).
void begin_request(const httplib::Request& req);
void before_response(const httplib::Request& req, httplib::Response& res);
void after_response(const httplib::Request& req, const httplib::Response& res,
                    const RequestLogOptions& options);
// Waits (bounded) until every log line is written; for shutdown.
void flush_request_log(std::chrono::milliseconds timeout);

}  // namespace mmserve::http
