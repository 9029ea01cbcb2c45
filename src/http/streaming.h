// Server-sent events for a running generation, and the blocking wait for a non-streamed one.
// A client that stops reading (a failed write) cancels its generation at once, which frees
// its sequence for the next request.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "scheduler/generation.h"

namespace mmserve::http {

// A non-streamed generation that ended without its answer (deadline, engine failure, shutdown)
// becomes the HTTP error for it; a normal end (stop, length) returns.
void throw_if_failed(const scheduler::GenerationOutcome& outcome);

// One SSE "data:" event.
std::string sse_event(const std::string& payload);

struct StreamFormat {
  // Payloads (already framed with sse_event) to send for the first event; may be empty.
  std::function<std::string()> opening;
  // For each piece of new text.
  std::function<std::string(std::string_view text)> piece;
  // After the end: final event(s), including the terminator.
  std::function<std::string(const scheduler::GenerationOutcome&)> closing;
};

void stream_generation(httplib::Response& res, std::shared_ptr<scheduler::Generation> generation,
                       StreamFormat format);

}  // namespace mmserve::http
