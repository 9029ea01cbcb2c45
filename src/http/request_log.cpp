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

// The inference endpoints: they are what mmserve_requests_total counts (probes, scrapes and
// unknown paths are only logged). A fixed list keeps label values bounded.
std::string_view inference_endpoint(std::string_view method, std::string_view path) {
  if (method != "POST") {
    return {};
  }
  for (const std::string_view known :
       {"/v1/inference", "/v1/chat/completions", "/v1/completions", "/v1/audio/transcriptions",
        "/v1/audio/translations", "/v1/embeddings"}) {
    if (path == known) {
      return known;
    }
  }
  return {};
}

// The task a request asked for: the one it named, else its endpoint's (the OpenAI text and audio
// endpoints have one each); "" when neither says (/v1/inference before its body was read).
std::string task_of(const RequestRecord& r) {
  if (!r.task.empty()) {
    return r.task;
  }
  if (r.endpoint.starts_with("/v1/audio/")) {
    return "speech-transcribe";
  }
  if (r.endpoint == "/v1/embeddings") {
    return "embed";
  }
  return r.endpoint.empty() || r.endpoint == "/v1/inference" ? "" : "text-gen";
}

std::string task_label(const RequestRecord& r) {
  const std::string task = task_of(r);
  return task.empty() ? "none" : task;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

pipeline::Usage usage_of(const RequestRecord& r);

// Counts the request, once, and tells the pipeline's stages how it ended (the audit row, the
// quotas' charge): just before its last bytes go out.
void count(Exchange& ex, int status, std::string error_type) {
  auto& r = ex.record;
  if (r.counted) {
    return;
  }
  r.counted = true;
  if (!r.endpoint.empty()) {
    metrics::server_metrics().record_request(task_label(r), r.model, r.endpoint,
                                             r.route.empty() ? "local" : r.route, status,
                                             seconds_since(r.start));
  }
  if (!r.admitted || ex.pipeline == nullptr) {
    return;
  }
  pipeline::Completion c;
  c.started_unix_ms = r.started_unix_ms;
  c.method = r.method;
  c.status = status;
  c.task = task_of(r);
  c.route = r.submitted ? (r.route.empty() ? "local" : r.route) : "";
  c.client = r.client;
  c.duration_ms = seconds_since(r.start) * 1000;
  if (r.submitted) {
    c.usage = usage_of(r);
    if (r.generation && !c.usage.error && status < 400) {
      // The answer the client got, for the capture stage (it reads it off the request path).
      const auto& o = r.generation->wait();
      c.answer = pipeline::Completion::Answer{
          .response_id = r.response_id,
          .text = o.result.text,
          .parser = r.parser,
          .finish_reason = engine::finish_reason_name(o.result.reason),
          .ttft_ms = o.result.completion_tokens > 0 ? o.queue_ms + o.result.prompt_ms : 0};
    }
  }
  c.usage.model = r.model;
  if (error_type.empty() && c.usage.error) {
    error_type = error_code_name(*c.usage.error);  // a stream that ended with an error event
  }
  c.error_type = std::move(error_type);
  ex.pipeline->complete(ex.call, c);
}

// The type of an error body ({"error": {"type": ...}}); "" when it is not one.
std::string error_type_of(int status, std::string_view content_type, std::string_view body,
                          std::string* param = nullptr) {
  if (status < 400 || !content_type.starts_with("application/json")) {
    return {};
  }
  const auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("error") || !parsed["error"].is_object()) {
    return {};
  }
  const auto& err = parsed["error"];
  if (param != nullptr && err.contains("param") && err["param"].is_string()) {
    *param = err["param"];
  }
  return err.contains("type") && err["type"].is_string() ? err["type"].get<std::string>() : "";
}

std::string truncated(const std::string& text) {
  if (text.size() <= kMaxCapturedBytes) {
    return text;
  }
  return text.substr(0, kMaxCapturedBytes) + "...[" +
         std::to_string(text.size() - kMaxCapturedBytes) + " more bytes]";
}

// What the request used, for the pipeline's stages; its generation or job has ended (or was
// cancelled and given up on, see complete_entry).
pipeline::Usage usage_of(const RequestRecord& r) {
  pipeline::Usage u;
  u.model = r.model;
  if (r.generation) {
    if (!r.generation->finished()) {
      u.error = ErrorCode::kCancelled;
      return u;
    }
    const auto& o = r.generation->wait();
    u.prompt_tokens = o.result.prompt_tokens;
    u.completion_tokens = o.result.completion_tokens;
    if (o.error) {
      u.error = o.error->code();
    }
  } else if (r.speech) {
    if (!r.speech->finished()) {
      u.error = ErrorCode::kCancelled;
      return u;
    }
    const auto& o = r.speech->wait();
    u.audio_seconds = o.transcript.duration;
    if (o.error) {
      u.error = o.error->code();
    }
  } else if (r.embedding) {
    if (!r.embedding->wait_for(std::chrono::milliseconds(0))) {
      u.error = ErrorCode::kCancelled;
      return u;
    }
    const auto& o = r.embedding->wait();
    u.prompt_tokens = o.prompt_tokens;
    if (o.error) {
      u.error = o.error->code();
    }
  }
  return u;
}

// Adds what the generation did, counts the request and writes its line; ends the record.
void complete_entry(Exchange& ex, RequestLogEntry e, const RequestLogOptions& options) {
  auto& rec = ex.record;
  e.time = std::chrono::system_clock::now();
  if (auto& g = rec.generation) {
    // The response is over: nobody reads what a generation still running would produce (a
    // client that left mid-stream). End it, so the line reports what it really did.
    if (!g->finished()) {
      g->cancel();
      const auto until = Clock::now() + kCancelWait;
      bool finished = false;
      while (!finished && Clock::now() < until) {
        g->take_text(std::chrono::milliseconds(20), finished);
      }
    }
    RequestLogEntry::Generation gen;
    gen.response_id = rec.response_id;
    gen.stream = rec.stream;
    if (g->finished()) {
      const auto& o = g->wait();
      const auto& r = o.result;
      gen.finish_reason =
          o.error ? error_code_name(o.error->code()) : engine::finish_reason_name(r.reason);
      gen.queue_ms = o.queue_ms;
      if (r.completion_tokens > 0) {
        gen.ttft_ms = o.queue_ms + r.prompt_ms;
      }
      gen.generate_ms = r.generate_ms;
      gen.prompt_tokens = r.prompt_tokens;
      gen.cached_prompt_tokens = r.cached_prompt_tokens;
      gen.completion_tokens = r.completion_tokens;
      if (options.capture_text) {
        e.output = truncated(r.text);
      }
    } else {
      gen.finish_reason = "unknown";
    }
    e.generation = std::move(gen);
  }

  if (rec.submitted && ex.pipeline != nullptr) {
    ex.pipeline->finish(ex.call, usage_of(rec));
  }
  count(ex, e.status, e.error_type);  // a stream cut short was not counted at its close
  if (!rec.endpoint.empty()) {
    e.endpoint = rec.endpoint;
    e.route = rec.route.empty() ? "local" : rec.route;
    e.task = task_label(rec);
    e.model = rec.model;
    e.caller = ex.call.caller.id;
    if (const auto* findings = ex.call.annotation("findings")) e.findings = *findings;
    if (ex.call.data_class != pipeline::DataClass::kUnspecified) {
      e.data_class = pipeline::data_class_name(ex.call.data_class);
    }
  }
  e.duration_ms = seconds_since(rec.start) * 1000;
  rec.generation.reset();
  rec.speech.reset();

  LogSink::standard_error().write_line(format_log_line(e));
  runtime::release_free_memory();  // the request's buffers are gone: give their pages back
}

void complete_deferred(Exchange& ex, const RequestLogOptions& options) {
  if (!ex.record.deferred) {
    return;
  }
  RequestLogEntry e = std::move(*ex.record.deferred);
  ex.record.deferred.reset();
  complete_entry(ex, std::move(e), options);
}

}  // namespace

std::string sanitize_request_id(std::string_view raw) {
  std::string out;
  for (const char c : raw) {
    if (out.size() >= kMaxRequestIdLength) {
      break;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (ok) {
      out += c;
    }
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

void note_task(Exchange& exchange, std::string_view task) {
  exchange.record.task = task;
}

void note_submission(Exchange& exchange, const pipeline::Submission& submission,
                     std::string response_id, bool stream) {
  auto& r = exchange.record;
  r.model = submission.model;
  r.route = exchange.call.executor;
  r.submitted = true;
  r.generation = submission.generation;
  r.speech = submission.speech;
  r.embedding = submission.embedding;
  r.response_id = std::move(response_id);
  r.stream = stream;
  r.parser = submission.parser;
}

namespace {

// A stream's closing events, wrapped to count the request when they are made (its headers went
// out with 200; an error event names its error).
template <class Outcome>
std::function<std::string(const Outcome&)> counted_closing(
    const std::weak_ptr<Exchange>& weak, std::function<std::string(const Outcome&)> closing) {
  return [weak, closing = std::move(closing)](const Outcome& o) {
    std::string bytes = closing(o);
    if (const auto ex = weak.lock()) {
      count(*ex, 200, o.error ? error_code_name(o.error->code()) : "");
    }
    return bytes;
  };
}

// Writes the stream's log line when it ends.
std::function<void()> log_when_released(const std::weak_ptr<Exchange>& weak) {
  return [weak] {
    if (const auto ex = weak.lock()) {
      complete_deferred(*ex, {.capture_text = ex->record.deferred_capture_text});
    }
  };
}

}  // namespace

void counted_stream_generation(const std::shared_ptr<Exchange>& exchange, ApiResponse& res,
                               std::shared_ptr<scheduler::Generation> generation,
                               StreamFormat format) {
  // Weak: the exchange is the response's user data, which outlives the stream's release (the
  // response runs it in its destructor, before its members go); the closures need no share of it.
  std::weak_ptr<Exchange> weak = exchange;
  format.closing = counted_closing(weak, std::move(format.closing));
  stream_generation(res, std::move(generation), std::move(format), log_when_released(weak));
}

void counted_stream_speech(const std::shared_ptr<Exchange>& exchange, ApiResponse& res,
                           std::shared_ptr<scheduler::SpeechJob> job, SpeechStreamFormat format) {
  std::weak_ptr<Exchange> weak = exchange;
  format.closing = counted_closing(weak, std::move(format.closing));
  stream_speech(res, std::move(job), std::move(format), log_when_released(weak));
}

void begin_request(Exchange& exchange, std::string_view method, std::string_view path,
                   std::string_view request_id_header) {
  auto& r = exchange.record;
  r.start = Clock::now();
  r.started_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  r.method = method;
  r.endpoint = inference_endpoint(method, path);
  exchange.call.request_id = sanitize_request_id(request_id_header);
  if (exchange.call.request_id.empty()) {
    exchange.call.request_id = generate_request_id();
  }
}

void before_response(Exchange& exchange, int status, bool streaming, std::string_view content_type,
                     std::string_view body) {
  if (!streaming) {
    count(exchange, status, error_type_of(status, content_type, body));
  }
}

void after_response(Exchange& exchange, const ResponseFacts& facts,
                    const RequestLogOptions& options) {
  auto& r = exchange.record;
  RequestLogEntry e;
  e.id = exchange.call.request_id;
  e.method = facts.method;
  e.path = facts.path;
  e.remote_addr = facts.remote_addr;
  e.status = facts.status;
  e.error_type = error_type_of(facts.status, facts.content_type, facts.body, &e.error_param);
  if (options.capture_text) {
    e.request_body = truncated(std::string(facts.request_body));
  }
  if (facts.streaming && r.generation && facts.status == 200) {
    r.deferred = std::move(e);  // the body is still to be sent: see complete_deferred
    r.deferred_capture_text = options.capture_text;
    return;
  }
  complete_entry(exchange, std::move(e), options);
}

void flush_request_log(std::chrono::milliseconds timeout) {
  LogSink::standard_error().flush(timeout);
}

}  // namespace mmserve::http
