#include "http/request_log.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "http/log_sink.h"
#include "metrics/server_metrics.h"
#include "runtime/process_memory.h"

namespace mmserve::http {
namespace {

using Clock = std::chrono::steady_clock;

// Captured text is cut here: a debug aid, not an archive.
constexpr size_t kMaxCapturedBytes = 16 * 1024;
// How long the logger waits for a cut-short generation to end after cancelling it; the
// scheduler ends it at its next step, so this bound is only hit by a wedged engine.
constexpr auto kCancelWait = std::chrono::seconds(2);

// The request in progress on this worker thread (see the header).
struct Record {
  bool active = false;
  bool counted = false;
  std::string id;
  Clock::time_point start;
  std::string_view endpoint;  // empty: not an inference request
  std::string task;
  std::string model;  // the registry's name, once a model was chosen
  std::shared_ptr<scheduler::Generation> generation;
  std::string response_id;
  bool stream = false;
  // A stream's line, begun by the logger (which cpp-httplib calls before the body is sent)
  // and completed when the stream is released.
  std::optional<RequestLogEntry> deferred;
  RequestLogOptions deferred_options;
};
thread_local Record t_record;

// The inference endpoints: they are what mmserve_requests_total counts (probes, scrapes and
// unknown paths are only logged). A fixed list keeps label values bounded.
std::string_view inference_endpoint(const httplib::Request& req) {
  if (req.method != "POST") return {};
  for (const std::string_view path : {"/v1/inference", "/v1/chat/completions", "/v1/completions",
                                      "/v1/audio/transcriptions", "/v1/audio/translations"}) {
    if (req.path == path) return path;
  }
  return {};
}

std::string task_label() {
  if (!t_record.task.empty()) return t_record.task;
  // The OpenAI endpoints generate text; /v1/inference names its task, "none" when it did not.
  return t_record.endpoint == "/v1/inference" ? "none" : "text-gen";
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Counts the request on this thread, once.
void count(int status) {
  if (t_record.counted) return;
  t_record.counted = true;
  if (t_record.endpoint.empty()) return;
  metrics::server_metrics().record_request(task_label(), t_record.model, t_record.endpoint, "local",
                                           status, seconds_since(t_record.start));
}

std::string truncated(const std::string& text) {
  if (text.size() <= kMaxCapturedBytes) return text;
  return text.substr(0, kMaxCapturedBytes) + "...[" +
         std::to_string(text.size() - kMaxCapturedBytes) + " more bytes]";
}

// Adds what the generation did, counts the request and writes its line; ends the record.
void complete_entry(RequestLogEntry e, const RequestLogOptions& options) {
  e.time = std::chrono::system_clock::now();
  if (auto& g = t_record.generation) {
    // The response is over: nobody reads what a generation still running would produce (a
    // client that left mid-stream). End it, so the line reports what it really did.
    if (!g->finished()) {
      g->cancel();
      const auto until = Clock::now() + kCancelWait;
      bool finished = false;
      while (!finished && Clock::now() < until)
        g->take_text(std::chrono::milliseconds(20), finished);
    }
    RequestLogEntry::Generation gen;
    gen.response_id = t_record.response_id;
    gen.stream = t_record.stream;
    if (g->finished()) {
      const auto& o = g->wait();
      const auto& r = o.result;
      gen.finish_reason =
          o.error ? error_code_name(o.error->code()) : engine::finish_reason_name(r.reason);
      gen.queue_ms = o.queue_ms;
      if (r.completion_tokens > 0) gen.ttft_ms = o.queue_ms + r.prompt_ms;
      gen.generate_ms = r.generate_ms;
      gen.prompt_tokens = r.prompt_tokens;
      gen.cached_prompt_tokens = r.cached_prompt_tokens;
      gen.completion_tokens = r.completion_tokens;
      if (options.capture_text) e.output = truncated(r.text);
    } else {
      gen.finish_reason = "unknown";
    }
    e.generation = std::move(gen);
  }

  count(e.status);  // a stream cut short was not counted at its close
  if (!t_record.endpoint.empty()) {
    e.endpoint = t_record.endpoint;
    e.route = "local";
    e.task = task_label();
    e.model = t_record.model;
  }
  e.duration_ms = seconds_since(t_record.start) * 1000;
  t_record = Record{};  // also releases the generation

  LogSink::standard_error().write_line(format_log_line(e));
  runtime::release_free_memory();  // the request's buffers are gone: give their pages back
}

void complete_deferred() {
  if (!t_record.deferred) return;
  RequestLogEntry e = std::move(*t_record.deferred);
  t_record.deferred.reset();
  complete_entry(std::move(e), t_record.deferred_options);
}

}  // namespace

std::string sanitize_request_id(std::string_view raw) {
  std::string out;
  for (const char c : raw) {
    if (out.size() >= kMaxRequestIdLength) break;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (ok) out += c;
  }
  return out;
}

std::string generate_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t hi = rng();
  const uint64_t lo = rng();
  std::array<unsigned, 16> b{};
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned>((hi >> (56 - 8 * i)) & 0xFF);
    b[8 + i] = static_cast<unsigned>((lo >> (56 - 8 * i)) & 0xFF);
  }
  b[6] = (b[6] & 0x0F) | 0x40;  // version 4
  b[8] = (b[8] & 0x3F) | 0x80;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof(buf),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return buf;
}

void note_task(std::string_view task) {
  t_record.task = task;
}

void note_model(std::string_view model) {
  t_record.model = model;
}

void note_generation(std::shared_ptr<scheduler::Generation> generation, std::string response_id,
                     bool stream) {
  t_record.generation = std::move(generation);
  t_record.response_id = std::move(response_id);
  t_record.stream = stream;
}

void counted_stream_generation(httplib::Response& res,
                               std::shared_ptr<scheduler::Generation> generation,
                               StreamFormat format) {
  format.closing = [closing = std::move(format.closing)](const scheduler::GenerationOutcome& o) {
    std::string bytes = closing(o);
    // Runs on the request's worker thread (httplib calls content providers there); a stream's
    // headers went out with status 200.
    if (t_record.active) count(200);
    return bytes;
  };
  // The stream is released on the same worker thread, after its last byte.
  stream_generation(res, std::move(generation), std::move(format), [] { complete_deferred(); });
}

void begin_request(const httplib::Request& req) {
  complete_deferred();  // a stream whose release never came (defensive)
  t_record = Record{};
  t_record.active = true;
  t_record.start = Clock::now();
  t_record.endpoint = inference_endpoint(req);
  t_record.id = sanitize_request_id(req.get_header_value(kRequestIdHeader));
  if (t_record.id.empty()) t_record.id = generate_request_id();
}

void before_response(const httplib::Request& req, httplib::Response& res) {
  if (!t_record.active) begin_request(req);  // httplib refused the request before routing
  res.set_header(kRequestIdHeader, t_record.id);
  if (!t_record.stream) count(res.status);
}

void after_response(const httplib::Request& req, const httplib::Response& res,
                    const RequestLogOptions& options) {
  if (!t_record.active) begin_request(req);
  RequestLogEntry e;
  e.id = t_record.id;
  e.method = req.method;
  e.path = req.path;
  e.remote_addr = req.remote_addr;
  e.status = res.status;
  if (res.status >= 400 && res.get_header_value("Content-Type").starts_with("application/json")) {
    const auto body = nlohmann::json::parse(res.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      const auto& err = body["error"];
      if (err.contains("type") && err["type"].is_string()) e.error_type = err["type"];
      if (err.contains("param") && err["param"].is_string()) e.error_param = err["param"];
    }
  }
  if (options.capture_text) e.request_body = truncated(req.body);
  if (t_record.stream && t_record.generation && res.status == 200) {
    t_record.deferred = std::move(e);  // the body is still to be sent: see complete_deferred
    t_record.deferred_options = options;
    return;
  }
  complete_entry(std::move(e), options);
}

void flush_request_log(std::chrono::milliseconds timeout) {
  LogSink::standard_error().flush(timeout);
}

}  // namespace mmserve::http
