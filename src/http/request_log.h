// Per-request observability at the HTTP edge: the X-Request-Id (accepted or generated, and
// echoed on every response), the request metrics (mmserve_requests_total and
// mmserve_request_duration_seconds) and one JSON line per request on stderr. The line never
// holds prompt or output text unless capture is switched on (`mmserve serve --log-prompts`).
//
// A request is counted, and the pipeline's stages told how it ended (Pipeline::complete: the
// audit row, the quotas), when its response is complete and before its last bytes are sent, so
// a client that has its answer sees it in /metrics and the audit log: a plain response in
// before_response(), a stream when its closing events are made (counted_stream_generation), a
// stream cut short when it ends. The log line is written after the response, with the full
// duration.
//
// State: what is gathered lives in the request's Exchange (RequestRecord), which the server
// keeps with the response; nothing here is per thread. The metrics and the log sink are
// thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/exchange.h"
#include "http/log_line.h"
#include "http/streaming.h"
#include "pipeline/executor.h"

namespace mmserve::http {

inline constexpr const char* kRequestIdHeader = "X-Request-Id";
inline constexpr size_t kMaxRequestIdLength = 128;

// A client's X-Request-Id with every character outside [A-Za-z0-9._:-] removed (no header or
// log injection) and cut to kMaxRequestIdLength; empty when nothing usable is left.
std::string sanitize_request_id(std::string_view raw);
// A fresh random id in the UUID version 4 text form.
std::string generate_request_id();

// For route handlers. The task the request asked for ("text-gen", ...), once it is valid.
void note_task(Exchange& exchange, std::string_view task);
// What served it: the model, the executor, and for text its generation, response id
// ("chatcmpl-...") and whether it is streamed.
void note_submission(Exchange& exchange, const pipeline::Submission& submission,
                     std::string response_id, bool stream);
// stream_generation(), counting the request when the stream's closing events are made and
// writing its line when the stream ends.
void counted_stream_generation(const std::shared_ptr<Exchange>& exchange, ApiResponse& res,
                               std::shared_ptr<scheduler::Generation> generation,
                               StreamFormat format);

// stream_speech(), counted the same way.
void counted_stream_speech(const std::shared_ptr<Exchange>& exchange, ApiResponse& res,
                           std::shared_ptr<scheduler::SpeechJob> job, SpeechStreamFormat format);

struct RequestLogOptions {
  bool capture_text = false;  // add the request body and the generated text to the log line
};

// What the server knows of the exchange once the response is out.
struct ResponseFacts {
  std::string_view method, path, remote_addr, request_body;
  int status = 0;
  std::string_view content_type, body;  // the error body, for its type and param
  bool streaming = false;               // the body is still being sent
};

// The server's hooks. begin_request: the request id (from X-Request-Id, or a new one) into
// exchange.call.request_id and what the log needs. before_response: just before the response
// is written. after_response: after it is written (a stream's line waits for its end).
void begin_request(Exchange& exchange, std::string_view method, std::string_view path,
                   std::string_view request_id_header);
// `content_type` and `body`: a plain response's, whose error type the stages record.
void before_response(Exchange& exchange, int status, bool streaming,
                     std::string_view content_type = {}, std::string_view body = {});
void after_response(Exchange& exchange, const ResponseFacts& facts,
                    const RequestLogOptions& options);
// Waits (bounded) until every log line is written; for shutdown.
void flush_request_log(std::chrono::milliseconds timeout);

}  // namespace mmserve::http
