#include "http/streaming.h"

#include "core/error.h"
#include "http/routes.h"

namespace mmserve::http {

void throw_if_failed(const scheduler::GenerationOutcome& o) {
  if (o.timed_out) throw Error(ErrorCode::kTimeout, "the request took longer than its deadline");
  if (o.result.reason == engine::FinishReason::kError) {
    throw Error(ErrorCode::kInternal, "generation failed: " + o.result.error);
  }
  if (o.result.reason == engine::FinishReason::kCancelled) {
    throw Error(ErrorCode::kUnavailable, "the request was cancelled (server shutting down)");
  }
}

std::string sse_event(const std::string& payload) {
  return "data: " + payload + "\n\n";
}

void stream_generation(httplib::Response& res, std::shared_ptr<scheduler::Generation> generation,
                       StreamFormat format) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // let reverse proxies pass events through
  auto opened = std::make_shared<bool>(false);
  in_flight_requests().fetch_add(1);  // until the stream is released, however it ends
  res.set_chunked_content_provider(
      "text/event-stream",
      [generation, format = std::move(format), opened](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& bytes) {
          if (bytes.empty()) return true;
          if (sink.write(bytes.data(), bytes.size())) return true;
          generation->cancel();  // the client went away
          return false;
        };
        if (!*opened) {
          *opened = true;
          if (format.opening && !send(format.opening())) return false;
        }
        bool finished = false;
        const std::string text = generation->take_text(std::chrono::milliseconds(100), finished);
        if (!text.empty() && !send(format.piece(text))) return false;
        if (finished) {
          if (!send(format.closing(generation->wait()))) return false;
          sink.done();
        }
        return true;
      },
      [generation](bool success) {
        if (!success) generation->cancel();
        in_flight_requests().fetch_sub(1);
      });
}

}  // namespace mmserve::http
