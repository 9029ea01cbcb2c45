// One HTTP exchange as our handlers see it, in our own types rather than cpp-httplib's, so a
// handler can be driven by a unit test without a socket: the request (ApiRequest), the answer
// it builds (ApiResponse: a body, or a stream written through a ChunkSink), and the state of
// the request shared by the hooks, the handler, the stream and the log (Exchange: the typed
// call and the log record). http_server.cpp adapts cpp-httplib to these; nothing else here
// includes httplib.h but the server, the image fetcher and the streams' adapter.
//
// Ownership: the adapter makes one Exchange per request (a shared_ptr kept with the response)
// and one ApiRequest, which borrows the library's buffers for the handler's duration.
// Threading: one exchange is touched by one thread at a time (the request's worker).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/log_line.h"
#include "pipeline/call.h"
#include "pipeline/pipeline.h"
#include "scheduler/generation.h"
#include "scheduler/speech_scheduler.h"

namespace mmserve::http {

// One part of a multipart/form-data body.
struct FormPart {
  std::string_view name;
  std::string_view content;
  bool is_file = false;  // sent with a filename
};

struct ApiRequest {
  std::string_view method, path, body, remote_addr;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  bool multipart = false;
  std::vector<FormPart> form;            // multipart: text fields first, then files
  std::vector<std::string> path_params;  // the route pattern's captures
  std::vector<std::pair<std::string_view, std::string_view>> query;  // decoded ?name=value

  // The first value of header `name` (case-insensitive); empty when absent.
  std::string_view header(std::string_view name) const;
  // The first value of query parameter `name`; nullopt when absent.
  std::optional<std::string_view> query_param(std::string_view name) const;
};

// Where a streamed body goes. write() false: the client is gone.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual bool write(std::string_view bytes) = 0;
  virtual void done() = 0;  // the body is complete
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A streamed body: called again and again until it returns false (client gone, or the body
  // ended with sink.done()). Must not throw.
  std::function<bool(ChunkSink&)> stream;
  // Runs once after the stream ended, however it ended (completed: every byte was sent).
  std::function<void(bool completed)> on_stream_end;

  void set_header(std::string name, std::string value);
};

// What the request log gathers about a request (request_log.h writes it).
struct RequestRecord {
  bool counted = false;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int64_t started_unix_ms = 0;
  std::string method;
  std::string client;     // the remote address
  bool admitted = false;  // went through the pipeline's admission: its stages see its completion
  std::string_view endpoint;  // empty: not an inference request
  std::string task;
  std::string model;       // the registry's name, once a model was chosen
  std::string route;       // the executor that ran it
  bool submitted = false;  // an executor accepted the call: the pipeline's finish runs at the end
  std::shared_ptr<scheduler::Generation> generation;   // text
  std::shared_ptr<scheduler::SpeechJob> speech;        // speech
  std::shared_ptr<scheduler::EmbeddingJob> embedding;  // embed
  std::string response_id;
  bool stream = false;
  std::shared_ptr<const engine::ChatOutputParser> parser;  // text: reads the answer back
  // A stream's line, begun when the headers went out and completed when the stream ends.
  std::optional<RequestLogEntry> deferred;
  bool deferred_capture_text = false;
};

// enable_shared_from_this: a stream's closures keep a weak reference to the exchange.
struct Exchange : std::enable_shared_from_this<Exchange> {
  pipeline::Call call;
  RequestRecord record;
  // The pipeline whose on_finish hooks run when the request ends; null: none (tests, probes).
  const pipeline::Pipeline* pipeline = nullptr;
};

}  // namespace mmserve::http
