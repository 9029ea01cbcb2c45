#include "executors/cloud/cloud_call.h"

#include <random>

#include "executors/cloud/retry_policy.h"
#include "executors/cloud/sse_decoder.h"
#include "metrics/server_metrics.h"

namespace mmserve::executors {
namespace {

using Clock = scheduler::Generation::Clock;

constexpr size_t kMaxErrorBody = 4096;       // of a refusal: enough for its message
constexpr size_t kMaxJsonAnswer = 16 << 20;  // a non-streamed answer

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string ms_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

// Stop reading: the executor is going away, the client went away, or the deadline passed.
bool should_stop(const CloudCall& call) {
  return call.stopping.load() || call.generation->cancel_requested() ||
         Clock::now() >= call.generation->deadline();
}

// The 200 answer as it arrives: its text goes to the generation piece by piece.
class AnswerReader {
 public:
  AnswerReader(scheduler::Generation& generation, bool json)
      : generation_(generation), json_(json) {}

  // False: stop reading (the endpoint sent an error, or too much).
  bool feed(const char* data, size_t size) {
    last_byte_ = Clock::now();
    if (json_) {
      if (body_.size() + size > kMaxJsonAnswer) {
        error_ = "its answer is over " + std::to_string(kMaxJsonAnswer >> 20) + " MiB";
        return false;
      }
      body_.append(data, size);
      return true;
    }
    events_.clear();
    decoder_.feed({data, size}, events_);
    for (const auto& e : events_) {
      take(e);
    }
    return error_.empty();
  }

  // The body ended as its framing says.
  void end_of_body() {
    if (json_) {
      take(decode_json_answer(body_));
      if (error_.empty() && finish_reason_.empty()) {
        finish_reason_ = "stop";
      }
      done_ = error_.empty();
      return;
    }
    events_.clear();
    decoder_.finish(events_);
    for (const auto& e : events_) {
      take(e);
    }
  }

  bool saw_done() const { return done_; }
  bool saw_finish() const { return !finish_reason_.empty(); }
  const std::string& error() const { return error_; }
  Clock::time_point last_byte() const { return last_byte_; }

  engine::SequenceResult result(Clock::time_point attempt_start) const {
    engine::SequenceResult r;
    r.reason =
        finish_reason_ == "length" ? engine::FinishReason::kLength : engine::FinishReason::kStop;
    r.text = text_;
    if (usage_) {
      r.prompt_tokens = static_cast<int32_t>(usage_->prompt_tokens);
      r.completion_tokens = static_cast<int32_t>(usage_->completion_tokens);
    } else {
      r.completion_tokens = deltas_;
    }
    const auto now = Clock::now();
    const auto first = first_text_.value_or(now);
    r.prompt_ms = ms_between(attempt_start, first);
    r.generate_ms = ms_between(first, now);
    return r;
  }

 private:
  void take(const UpstreamEvent& e) {
    if (done_ || !error_.empty()) {
      return;  // nothing counts after [DONE] or an error
    }
    switch (e.kind) {
      case UpstreamEvent::Kind::kDone: done_ = true; return;
      case UpstreamEvent::Kind::kError: error_ = e.error; return;
      case UpstreamEvent::Kind::kChunk: break;
    }
    if (!e.content.empty()) {
      if (!first_text_) {
        first_text_ = Clock::now();
      }
      generation_.push_text(e.content);
      text_ += e.content;
      ++deltas_;
    }
    if (!e.finish_reason.empty()) {
      finish_reason_ = e.finish_reason;
    }
    if (e.usage) {
      usage_ = e.usage;
    }
  }

  scheduler::Generation& generation_;
  const bool json_;
  SseDecoder decoder_;
  std::vector<UpstreamEvent> events_;
  std::string body_;  // json_: the whole answer
  std::string text_;
  int32_t deltas_ = 0;
  std::string finish_reason_;
  std::optional<UpstreamUsage> usage_;
  bool done_ = false;
  std::string error_;
  std::optional<Clock::time_point> first_text_;
  Clock::time_point last_byte_ = Clock::now();
};

// Ends a streamed answer: normally once the endpoint said it was over, else with the reason.
void finish_answer(CloudCall& call, const CloudOptions& options, AnswerReader& reader,
                   bool body_complete, httplib::Error error, Clock::time_point call_start,
                   Clock::time_point attempt_start) {
  if (body_complete) {
    reader.end_of_body();
  }
  scheduler::GenerationOutcome outcome;
  outcome.queue_ms = ms_between(call_start, attempt_start);
  outcome.result = reader.result(attempt_start);
  auto cancel = [&](ErrorCode code, const std::string& message) {
    outcome.result.reason = engine::FinishReason::kCancelled;
    outcome.error = Error(code, message);
  };
  auto fail = [&](const std::string& why) {
    outcome.result.reason = engine::FinishReason::kError;
    outcome.error = Error(ErrorCode::kUnavailable, "the cloud endpoint failed mid-answer: " + why);
    outcome.result.error = outcome.error;
  };
  // Whole once the endpoint said [DONE], whatever happened after; or when the connection
  // ended after the finish_reason without [DONE] (and nobody stopped it).
  if (reader.saw_done()) {
    call.generation->finish(std::move(outcome));
    return;
  }
  if (call.stopping.load()) {
    cancel(ErrorCode::kUnavailable,
           "the server is shutting down; the request was cancelled while generating");
  } else if (call.generation->cancel_requested()) {
    cancel(ErrorCode::kCancelled,
           "the request was cancelled by its client (gone or asked) while generating");
  } else if (Clock::now() >= call.generation->deadline()) {
    cancel(ErrorCode::kTimeout, "the request ran past its deadline (--timeout) while generating");
  } else if (!reader.error().empty()) {
    fail(reader.error());
  } else if (reader.saw_finish()) {
    call.generation->finish(std::move(outcome));
    return;
  } else if (body_complete) {
    fail("the stream ended before its finish_reason");
  } else if (Clock::now() - reader.last_byte() >= options.read_timeout) {
    fail("nothing arrived for " + ms_text(options.read_timeout) + " (the read timeout)");
  } else {
    fail("the connection broke (" + httplib::to_string(error) + ")");
  }
  call.generation->finish(std::move(outcome));
}

struct Attempt {
  bool answered = false;  // 200: the generation got its outcome
  bool stopped = false;   // ended by us (shutdown) with no verdict on the endpoint
  std::string outcome;    // retry_policy.h's names
  std::string status;     // for the annotation: "503", "connect_error", "timeout"
  std::string failure;    // for messages
  std::optional<std::chrono::seconds> retry_after;
};

// What a refusal's body says: the endpoint's error message when it sent one.
std::string refusal_detail(int status, const std::string& body) {
  std::string out = "HTTP " + std::to_string(status);
  const auto e = decode_json_answer(body);
  if (e.kind == UpstreamEvent::Kind::kError && e.error.starts_with("the endpoint reported")) {
    out += " (" + e.error.substr(0, 300) + ")";
  }
  return out;
}

Attempt attempt_once(CloudCall& call, const CloudOptions& options, CircuitBreaker& breaker,
                     Clock::time_point call_start) {
  const auto start = Clock::now();
  Attempt a;
  int status = 0;
  std::string error_body;
  std::optional<AnswerReader> reader;
  httplib::Request req;
  req.method = "POST";
  req.path = call.path;
  req.body = call.body;
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  // Compressed, a stream's events would wait in the endpoint's compressor.
  req.set_header("Accept-Encoding", "identity");
  if (!options.api_key.empty()) {
    req.set_header("Authorization", "Bearer " + options.api_key);
  }
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    if (status != 200) {
      a.retry_after = parse_retry_after(res.get_header_value("Retry-After"));
      return true;  // its body says why
    }
    metrics::server_metrics().routing().record_cloud_attempt("ok", seconds_since(start));
    breaker.record_success();
    const auto type = res.get_header_value("Content-Type");
    reader.emplace(*call.generation, type.find("json") != std::string::npos);
    {
      MutexLock lock(call.mutex);
      call.phase = CloudCall::Phase::kStreaming;
    }
    call.streaming.store(true);
    call.changed.notify_all();
    return !should_stop(call);
  };
  req.content_receiver = [&](const char* data, size_t size, size_t, size_t) {
    if (status != 200) {
      error_body.append(data, std::min(size, kMaxErrorBody - error_body.size()));
      return error_body.size() < kMaxErrorBody;
    }
    return !should_stop(call) && reader->feed(data, size);
  };
  httplib::Response res;
  auto error = httplib::Error::Success;
  const bool complete = call.client->send(req, res, error);
  if (reader) {
    a.answered = true;
    finish_answer(call, options, *reader, complete, error, call_start, start);
    return a;
  }
  if (status == 0 && complete) {
    status = res.status;  // a response without a body (204) skips the handler
  }
  if (status == 0 && call.stopping.load()) {
    a.stopped = true;
    return a;
  }
  if (status != 0) {
    a.outcome = outcome_of_status(status);
    a.status = std::to_string(status);
    a.failure = refusal_detail(status, error_body);
  } else if (error == httplib::Error::ConnectionTimeout) {
    a.outcome = a.status = "timeout";
    a.failure = "no connection within " + ms_text(options.connect_timeout);
  } else if (error == httplib::Error::Timeout ||
             (error == httplib::Error::Read && Clock::now() - start >= options.read_timeout)) {
    a.outcome = a.status = "timeout";
    a.failure = "no answer within " + ms_text(options.read_timeout) + " (the read timeout)";
  } else {
    a.outcome = a.status = "connect_error";
    a.failure = "no answer (" + httplib::to_string(error) + ")";
  }
  metrics::server_metrics().routing().record_cloud_attempt(a.outcome, seconds_since(start));
  // A refusal of this call (400, 413, 422...) says nothing against the endpoint; a wrong key, a
  // wrong path or model (401, 403, 404) will refuse every call, as an endpoint that is down.
  const bool call_refused =
      a.outcome == "http_4xx" && status != 401 && status != 403 && status != 404;
  if (call_refused) {
    breaker.release();
  } else {
    breaker.record_failure();
  }
  return a;
}

double jitter() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

void fail_call(CloudCall& call, const std::string& status, const std::string& failure) {
  {
    MutexLock lock(call.mutex);
    call.phase = CloudCall::Phase::kFailed;
    if (!status.empty()) {
      call.last_status = status;
    }
    call.failure = failure;
  }
  call.changed.notify_all();
}

// Waits `delay` unless the call is stopped or abandoned first; false then.
bool wait_backoff(CloudCall& call, std::chrono::milliseconds delay) {
  const auto until = Clock::now() + delay;
  MutexLock lock(call.mutex);
  while (!call.stopping.load() && !call.generation->cancel_requested()) {
    if (call.changed.wait_until(call.mutex, until) == std::cv_status::timeout) {
      return !call.stopping.load() && !call.generation->cancel_requested();
    }
  }
  return false;
}

void run_attempts(CloudCall& call, const CloudOptions& options, CircuitBreaker& breaker) {
  const auto call_start = Clock::now();
  Attempt last;
  for (int attempt = 1;; ++attempt) {
    if (attempt > 1 && !breaker.allow()) {
      fail_call(call, last.status, last.failure + "; then the circuit breaker opened");
      return;
    }
    {
      MutexLock lock(call.mutex);
      call.attempts = attempt;
    }
    last = attempt_once(call, options, breaker, call_start);
    if (last.answered) {
      return;
    }
    if (last.stopped) {
      breaker.release();
      fail_call(call, "", "the server is shutting down");
      return;
    }
    if (!retryable(last.outcome) || attempt > options.retries) {
      fail_call(call, last.status, last.failure);
      return;
    }
    const auto delay = retry_delay(options, attempt, last.retry_after, jitter());
    if (Clock::now() + delay >= call.generation->deadline()) {
      fail_call(call, last.status, last.failure + "; no time was left to retry");
      return;
    }
    if (!wait_backoff(call, delay)) {
      fail_call(call, last.status, last.failure + "; the call was cancelled");
      return;
    }
  }
}

}  // namespace

CloudCall::CloudCall(const std::string& origin, std::string path_, std::string body_,
                     std::string model_, std::shared_ptr<scheduler::Generation> generation_,
                     const CloudOptions& options)
    : path(std::move(path_)),
      body(std::move(body_)),
      model(std::move(model_)),
      generation(std::move(generation_)),
      client(std::make_unique<httplib::Client>(origin)) {
  client->set_connection_timeout(options.connect_timeout);
  client->set_read_timeout(options.read_timeout);
  client->set_write_timeout(options.read_timeout);
  client->set_keep_alive(false);  // one call, one connection: nothing to reuse
}

void run_cloud_call(CloudCall& call, const CloudOptions& options,
                    CircuitBreaker& breaker) noexcept {
  // Out of memory, or a bug: end the call in whatever phase it was, and free a trial slot the
  // breaker may have given it.
  auto fail_internal = [&](const std::string& what) noexcept {
    try {
      breaker.release();
      const Error error(ErrorCode::kInternal, "internal error: " + what);
      if (!call.streaming.load()) {
        fail_call(call, "bad_response", error.what());
      } else if (!call.generation->finished()) {
        scheduler::GenerationOutcome outcome;
        outcome.result.reason = engine::FinishReason::kError;
        outcome.error = error;
        outcome.result.error = error;
        call.generation->finish(std::move(outcome));
      }
    } catch (...) {  // nothing more can be done: the waiting side sees `done`
    }
  };
  try {
    run_attempts(call, options, breaker);
  } catch (const std::exception& e) {
    fail_internal(e.what());
  } catch (...) {
    fail_internal("unknown exception");
  }
  call.done.store(true);
}

}  // namespace mmserve::executors
