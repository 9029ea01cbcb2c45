// Server-sent events for a running generation, and the blocking wait for a non-streamed one.
//
// Invariant of the HTTP layer: no exception ever reaches cpp-httplib. Handlers run inside
// guarded() (routes.h), which turns any exception into the endpoint's JSON error; a stream's
// body is written after the handler returned, so stream_generation()'s writer catches
// everything itself and ends the stream with one error event (sse_error) in the API's error
// shape. A stream that failed (deadline, engine failure, shutdown) never reports a normal
// finish and never sends [DONE]: its last event is the error.
//
// Clients that leave: a failed write (streams) or the call's cancellation (non-streamed waits;
// the server's probe of the connection, see pipeline::Cancellation) cancels the generation,
// which frees its sequence at the scheduler's next step.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"
#include "http/exchange.h"
#include "pipeline/call.h"
#include "scheduler/generation.h"
#include "scheduler/speech_scheduler.h"

namespace mmserve::http {

// A generation that ended without its answer (deadline, engine failure, shutdown, client gone)
// becomes the typed error it carries; a normal end (stop, length) returns.
void throw_if_failed(const scheduler::GenerationOutcome& outcome);

// Waits for a non-streamed generation; cancels it when the call is cancelled (client gone).
const scheduler::GenerationOutcome& wait_for_answer(const pipeline::Call& call,
                                                    scheduler::Generation& generation);

// One SSE "data:" event holding a JSON document (serialized tolerantly, see json_output.h).
std::string sse_event(const nlohmann::json& payload);
// The normal terminator: data: [DONE]
std::string sse_done();
// The failure event, the same {"error": {"message", "type", "param", "code"}} object every
// endpoint answers with (http_error.h); OpenAI's client libraries raise it as an APIError.
std::string sse_error(const Error& error);

struct StreamFormat {
  // What must live until the stream ends: the lease on its model (runtime/model_registry.h),
  // so that an unload never frees a model under a stream still reading from it.
  std::shared_ptr<const void> keep_alive;
  // Events (already framed with sse_event) for the start of the stream; may be empty.
  std::function<std::string()> opening;
  // For each piece of new text.
  std::function<std::string(std::string_view text)> piece;
  // After a normal end (stop, length): the final event(s), including sse_done().
  std::function<std::string(const scheduler::GenerationOutcome&)> closing;
};

// Makes `res` the event stream of `generation`. `on_release`, when given, runs once after the
// stream ended, however it ended, on the request's worker thread.
void stream_generation(ApiResponse& res, const std::shared_ptr<scheduler::Generation>& generation,
                       StreamFormat format, std::function<void()> on_release = nullptr);

// A transcription's stream: events for each segment as its window ends, then the closing ones.
// The same rules as stream_generation(): a failure ends it with one error event; a client that
// leaves cancels the job.
struct SpeechStreamFormat {
  std::shared_ptr<const void> keep_alive;  // the lease on the speech model
  // For each new segment (in order): its events, possibly none.
  std::function<std::string(const engine::SpeechSegment&)> segment;
  // After the job completed: the final event(s).
  std::function<std::string(const scheduler::SpeechOutcome&)> closing;
};

void stream_speech(ApiResponse& res, const std::shared_ptr<scheduler::SpeechJob>& job,
                   SpeechStreamFormat format, std::function<void()> on_release = nullptr);

}  // namespace mmserve::http
