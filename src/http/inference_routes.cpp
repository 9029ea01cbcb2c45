// POST /v1/inference: the product's own task API.
//   {"input": "...", "task": "text-gen", "parameters": {"max_tokens": 200, ...}, "stream": false}
//   -> {"id", "task", "model", "output", "finish_reason", "usage", "timings"}
#include <string>

#include "core/error.h"
#include "http/json_fields.h"
#include "http/routes.h"
#include "http/streaming.h"
#include "http/text_params.h"

namespace mmserve::http {
namespace {

constexpr const char* kValidTasks = "text-gen, image-caption, speech-transcribe";

Json timings_json(const scheduler::GenerationOutcome& o) {
  return {{"queue_ms", o.queue_ms},
          {"prompt_ms", o.result.prompt_ms},
          {"generate_ms", o.result.generate_ms}};
}

Json usage_json(const engine::SequenceResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"cached_prompt_tokens", r.cached_prompt_tokens}};
}

// Errors that end a generation without output become HTTP errors; others are a finish reason.
void throw_if_failed(const scheduler::GenerationOutcome& o) {
  if (o.timed_out) throw Error(ErrorCode::kTimeout, "the request took longer than its deadline");
  if (o.result.reason == engine::FinishReason::kError) {
    throw Error(ErrorCode::kInternal, "generation failed: " + o.result.error);
  }
  if (o.result.reason == engine::FinishReason::kCancelled) {
    throw Error(ErrorCode::kUnavailable, "the request was cancelled (server shutting down)");
  }
}

void handle_text_gen(const Json& body, const Json& params, bool stream, runtime::Runtime& rt,
                     httplib::Response& res) {
  const auto input = opt_string(body, "input", "");
  if (!input)
    throw Error(ErrorCode::kInvalidInput, "field 'input' (the prompt text) is required", "input");
  if (input->empty()) throw Error(ErrorCode::kInvalidInput, "field 'input' is empty", "input");

  auto& text = rt.text();
  const auto& model = text.model();
  engine::GenerationRequest request;
  read_generation_params(params, "parameters", request);
  // An instruction-tuned model (one with a chat template) gets the input as a user turn, as
  // Ollama's and llama-server's users expect; "raw": true sends it as a plain completion.
  const bool raw = opt_bool(params, "raw", "parameters").value_or(false);
  if (model.has_chat_template() && !raw) {
    std::vector<engine::ChatMessage> messages;
    if (auto system = opt_string(params, "system", "parameters"))
      messages.push_back({"system", *system});
    messages.push_back({"user", *input});
    request.prompt = model.tokenize(model.apply_chat_template(messages), true, true);
  } else {
    request.prompt = model.tokenize(*input, true, false);
  }
  resolve_max_tokens(request, text.sequence_capacity());

  const auto deadline = scheduler::Generation::Clock::now() + rt.options().request_timeout;
  std::shared_ptr<scheduler::Generation> generation;
  try {
    generation = text.submit(std::move(request), deadline);
  } catch (const Error& e) {
    // The scheduler names engine fields; here they live under "parameters".
    if (e.field() == "input" || e.field().empty()) throw;
    throw Error(e.code(), e.what(), "parameters." + e.field());
  }
  const std::string id = new_request_id("inf-");
  const std::string model_id = model.id();

  if (!stream) {
    const auto& outcome = generation->wait();
    throw_if_failed(outcome);
    const Json out = {{"id", id},
                      {"task", "text-gen"},
                      {"model", model_id},
                      {"output", outcome.result.text},
                      {"finish_reason", engine::finish_reason_name(outcome.result.reason)},
                      {"usage", usage_json(outcome.result)},
                      {"timings", timings_json(outcome)}};
    res.set_content(out.dump(), "application/json");
    return;
  }
  stream_generation(
      res, generation,
      {.opening = nullptr,
       .piece =
           [id](std::string_view piece) {
             return sse_event(Json{{"id", id}, {"task", "text-gen"}, {"output", piece}}.dump());
           },
       .closing =
           [id, model_id](const scheduler::GenerationOutcome& o) {
             Json end = {{"id", id},
                         {"task", "text-gen"},
                         {"model", model_id},
                         {"output", ""},
                         {"finish_reason", engine::finish_reason_name(o.result.reason)},
                         {"usage", usage_json(o.result)},
                         {"timings", timings_json(o)}};
             if (!o.result.error.empty()) end["error"] = o.result.error;
             return sse_event(end.dump()) + sse_event("[DONE]");
           }});
}

}  // namespace

void register_inference_routes(httplib::Server& server, runtime::Runtime& rt) {
  server.Post("/v1/inference", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const Json body = parse_json_object(req.body);
      const auto task = opt_string(body, "task", "");
      if (!task) {
        throw Error(ErrorCode::kInvalidInput,
                    std::string("field 'task' is required; valid tasks: ") + kValidTasks, "task");
      }
      const Json* params = opt_object(body, "parameters", "");
      const Json no_params = Json::object();
      const Json& p = params != nullptr ? *params : no_params;
      const bool stream = opt_bool(body, "stream", "").value_or(false) ||
                          opt_bool(p, "stream", "parameters").value_or(false);
      if (*task == "text-gen") {
        handle_text_gen(body, p, stream, rt, res);
      } else if (*task == "image-caption") {
        throw Error(ErrorCode::kModelUnavailable,
                    "task 'image-caption' needs a vision model and projector (--mmproj), which "
                    "this server has not loaded",
                    "task");
      } else if (*task == "speech-transcribe") {
        throw Error(ErrorCode::kModelUnavailable,
                    "task 'speech-transcribe' needs a speech model (--whisper-model), which this "
                    "server has not loaded",
                    "task");
      } else {
        throw Error(ErrorCode::kInvalidInput,
                    "unknown task '" + *task + "'; valid tasks: " + kValidTasks, "task");
      }
    });
  });
}

}  // namespace mmserve::http
