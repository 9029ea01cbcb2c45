#include "http/streaming.h"

#include "http/http_error.h"
#include "http/json_output.h"

namespace mmserve::http {

void throw_if_failed(const scheduler::GenerationOutcome& o) {
  if (o.error) {
    throw *o.error;
  }
}

const scheduler::GenerationOutcome& wait_for_answer(const pipeline::Call& call,
                                                    scheduler::Generation& generation) {
  pipeline::wait_unless_cancelled(generation, *call.cancellation);
  return generation.wait();
}

std::string sse_event(const nlohmann::json& payload) {
  return "data: " + to_json_text(payload) + "\n\n";
}

std::string sse_done() {
  return "data: [DONE]\n\n";
}

std::string sse_error(const Error& error) {
  return "data: " + error_json(error) + "\n\n";
}

namespace {

// Sends `bytes` (nothing when empty); a failed write means the client went away: the job is
// cancelled and false returned.
template <class Job>
bool send_or_cancel(ChunkSink& sink, Job& job, const std::string& bytes) {
  if (bytes.empty() || sink.write(bytes)) {
    return true;
  }
  job.cancel();
  return false;
}

// Whatever went wrong while streaming: stop the job, send one error event, close.
template <class Job>
bool fail(Job& job, ChunkSink& sink, const Error& error) noexcept {
  try {
    job.cancel();
    if (sink.write(sse_error(error))) {
      sink.done();
    }
  } catch (...) {  // the server closes the connection
  }
  return false;
}

// Makes `res` an event stream written by `pump(sink)` (false: ended), with every exception
// turned into the error event, and `job` cancelled when the stream ends early.
template <class Job, class Pump>
void event_stream(ApiResponse& res, const std::shared_ptr<Job>& job, Pump pump,
                  std::function<void()> on_release) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // let reverse proxies pass events through
  res.content_type = "text/event-stream";
  res.stream = [job, pump = std::move(pump)](ChunkSink& sink) mutable noexcept {
    try {
      return pump(sink);
    } catch (const Error& e) {
      return fail(*job, sink, e);
    } catch (const std::exception& e) {
      return fail(*job, sink,
                  Error(ErrorCode::kInternal, std::string("internal error: ") + e.what()));
    } catch (...) {
      return fail(*job, sink, Error(ErrorCode::kInternal, "internal error"));
    }
  };
  res.on_stream_end = [job, on_release = std::move(on_release)](bool completed) noexcept {
    if (!completed) {
      job->cancel();
    }
    if (on_release) {
      try {
        on_release();
      } catch (...) {  // the log line is lost; the server goes on
      }
    }
  };
}

constexpr std::chrono::milliseconds kPumpWait{100};

// The job ended: its closing events (or its error's), then the end of the stream. Returns
// false, the writer's "ended".
template <class Job, class Closing>
bool send_closing(ChunkSink& sink, Job& job, const Closing& closing) {
  const auto& outcome = job.wait();
  if (send_or_cancel(sink, job, outcome.error ? sse_error(*outcome.error) : closing(outcome))) {
    sink.done();
  }
  return false;
}

}  // namespace

void stream_generation(ApiResponse& res, const std::shared_ptr<scheduler::Generation>& generation,
                       StreamFormat format, std::function<void()> on_release) {
  // One call of the writer sends what is new; false: the client is gone, or the stream ended.
  auto pump = [generation, format = std::move(format), opened = false](ChunkSink& sink) mutable {
    auto& g = *generation;
    if (!opened) {
      opened = true;
      if (format.opening && !send_or_cancel(sink, g, format.opening())) {
        return false;
      }
    }
    bool finished = false;
    const std::string text = g.take_text(kPumpWait, finished);
    if (!text.empty() && !send_or_cancel(sink, g, format.piece(text))) {
      return false;
    }
    return finished ? send_closing(sink, g, format.closing) : true;
  };
  event_stream(res, generation, std::move(pump), std::move(on_release));
}

void stream_speech(ApiResponse& res, const std::shared_ptr<scheduler::SpeechJob>& job,
                   SpeechStreamFormat format, std::function<void()> on_release) {
  auto pump = [job, format = std::move(format), seen = size_t{0}](ChunkSink& sink) mutable {
    auto& j = *job;
    bool finished = false;
    for (const auto& segment : j.take_segments(seen, kPumpWait, finished)) {
      ++seen;
      if (!send_or_cancel(sink, j, format.segment(segment))) {
        return false;
      }
    }
    return finished ? send_closing(sink, j, format.closing) : true;
  };
  event_stream(res, job, std::move(pump), std::move(on_release));
}

}  // namespace mmserve::http
