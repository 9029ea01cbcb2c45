#include "http/streaming.h"

#include "http/http_error.h"
#include "http/json_output.h"
#include "http/routes.h"

namespace mmserve::http {

void throw_if_failed(const scheduler::GenerationOutcome& o) {
  if (o.error) {
    throw *o.error;
  }
}

const scheduler::GenerationOutcome& wait_for_answer(const httplib::Request& req,
                                                    scheduler::Generation& generation) {
  wait_while_connected(req, generation);
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

// One call of the content provider: sends what is new. False: the client is gone.
bool pump(StreamState& st, httplib::DataSink& sink) {
  auto send = [&](const std::string& bytes) {
    if (bytes.empty()) {
      return true;
    }
    if (sink.write(bytes.data(), bytes.size())) {
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
  }
  return true;
}

// Whatever went wrong while streaming: stop the generation, send one error event, close.
bool fail(StreamState& st, httplib::DataSink& sink, const Error& error) noexcept {
  try {
    st.generation->cancel();
    const std::string event = sse_error(error);
    if (!sink.write(event.data(), event.size())) {
      return false;
    }
    sink.done();
    return true;
  } catch (...) {
    return false;  // httplib closes the connection
  }
}

}  // namespace

void stream_generation(httplib::Response& res, std::shared_ptr<scheduler::Generation> generation,
                       StreamFormat format, std::function<void()> on_release) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // let reverse proxies pass events through
  auto state = std::make_shared<StreamState>(
      StreamState{.generation = generation, .format = std::move(format)});
  in_flight_requests().fetch_add(1);  // until the stream is released, however it ends
  res.set_chunked_content_provider(
      "text/event-stream",
      [state](size_t, httplib::DataSink& sink) noexcept {
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
      },
      [generation, on_release = std::move(on_release)](bool success) noexcept {
        if (!success) {
          generation->cancel();
        }
        if (on_release) {
          try {
            on_release();
          } catch (...) {  // the log line is lost; the server goes on
          }
        }
        in_flight_requests().fetch_sub(1);
      });
}

}  // namespace mmserve::http
