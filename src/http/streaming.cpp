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

struct StreamState {
  std::shared_ptr<scheduler::Generation> generation;
  StreamFormat format;
  bool opened = false;
};

// One call of the writer: sends what is new. False: the client is gone, or the stream ended.
bool pump(StreamState& st, ChunkSink& sink) {
  auto send = [&](const std::string& bytes) {
    if (bytes.empty()) {
      return true;
    }
    if (sink.write(bytes)) {
      return true;
    }
    st.generation->cancel();  // the client went away
    return false;
  };
  if (!st.opened) {
    st.opened = true;
    if (st.format.opening && !send(st.format.opening())) {
      return false;
    }
  }
  bool finished = false;
  const std::string text = st.generation->take_text(std::chrono::milliseconds(100), finished);
  if (!text.empty() && !send(st.format.piece(text))) {
    return false;
  }
  if (finished) {
    const auto& outcome = st.generation->wait();
    if (!send(outcome.error ? sse_error(*outcome.error) : st.format.closing(outcome))) {
      return false;
    }
    sink.done();
    return false;
  }
  return true;
}

// Whatever went wrong while streaming: stop the generation, send one error event, close.
bool fail(StreamState& st, ChunkSink& sink, const Error& error) noexcept {
  try {
    st.generation->cancel();
    if (sink.write(sse_error(error))) {
      sink.done();
    }
  } catch (...) {  // the server closes the connection
  }
  return false;
}

}  // namespace

void stream_generation(ApiResponse& res, const std::shared_ptr<scheduler::Generation>& generation,
                       StreamFormat format, std::function<void()> on_release) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // let reverse proxies pass events through
  res.content_type = "text/event-stream";
  auto state = std::make_shared<StreamState>(
      StreamState{.generation = generation, .format = std::move(format)});
  res.stream = [state](ChunkSink& sink) noexcept {
    try {
      return pump(*state, sink);
    } catch (const Error& e) {
      return fail(*state, sink, e);
    } catch (const std::exception& e) {
      return fail(*state, sink,
                  Error(ErrorCode::kInternal, std::string("internal error: ") + e.what()));
    } catch (...) {
      return fail(*state, sink, Error(ErrorCode::kInternal, "internal error"));
    }
  };
  res.on_stream_end = [generation, on_release = std::move(on_release)](bool completed) noexcept {
    if (!completed) {
      generation->cancel();
    }
    if (on_release) {
      try {
        on_release();
      } catch (...) {  // the log line is lost; the server goes on
      }
    }
  };
}

}  // namespace mmserve::http
