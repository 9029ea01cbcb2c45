// POST /v1/inference: the product's own task API.
//   {"input": "...", "task": "text-gen", "parameters": {"max_tokens": 200, ...}, "stream": false}
//   -> {"id", "task", "model", "output", "finish_reason", "usage", "timings"}
// Tasks: "text-gen" (input: the prompt) and "image-caption" (input: the image as base64 or a
// data URL; parameters.prompt: what to ask). The same fields may come as multipart/form-data,
// the image as an uploaded file ("input", "image" or "file"), "parameters" as a JSON string.
// "speech-transcribe" (input: the audio as base64, a data URL or an uploaded file) is served by
// audio_routes.cpp, "embed" (input: text(s) or token arrays) by embedding_routes.cpp.
#include <optional>
#include <string>

#include "core/error.h"
#include "http/api_requests.h"
#include "http/audio_routes.h"
#include "http/embedding_routes.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"
#include "metrics/server_metrics.h"

namespace mmserve::http {
namespace {

// The request's fields, from JSON or from a multipart form (with its uploaded file, if any).
struct InferenceInput {
  Json body;
  std::optional<std::string> upload;
};

InferenceInput read_input(const ApiRequest& req) {
  if (!req.multipart) {
    return {parse_json_object(std::string(req.body)), std::nullopt};
  }
  InferenceInput in{Json::object(), std::nullopt};
  const auto set_upload = [&](const std::string& name, std::string_view content) {
    if (in.upload || in.body.contains("input")) {
      throw Error(ErrorCode::kInvalidInput, "more than one input file or field in the form", name);
    }
    in.upload = std::string(content);
  };
  const auto text_field = [&](const std::string& name, std::string_view content) {
    if (name == "image" || name == "file") {
      return set_upload(name, content);
    }
    if (in.body.contains(name) || (name == "input" && in.upload)) {
      throw Error(ErrorCode::kInvalidInput, "form field '" + name + "' is given twice", name);
    }
    if (name == "parameters") {
      try {
        in.body["parameters"] = parse_json_object(std::string(content));
      } catch (const Error& e) {
        throw Error(e.code(), std::string("form field 'parameters': ") + e.what(), "parameters");
      }
    } else if (name == "task" || name == "input" || name == "model") {
      in.body[name] = std::string(content);
    } else if (name == "stream") {
      if (content != "true" && content != "false" && content != "1" && content != "0") {
        throw Error(ErrorCode::kInvalidInput, "form field 'stream' must be true or false",
                    "stream");
      }
      in.body["stream"] = content == "true" || content == "1";
    } else {
      throw Error(
          ErrorCode::kInvalidInput,
          "unknown form field '" + name +
              "'; fields: task, model, input (text or file), image, file, parameters, stream",
          name);
    }
  };
  for (const auto& part : req.form) {
    const std::string name(part.name);
    if (part.is_file && (name == "input" || name == "image" || name == "file")) {
      set_upload(name, part.content);
    } else {
      text_field(name, part.content);  // a text field, or one sent as a file part
    }
  }
  return in;
}

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

// The typed call of a text-gen or image-caption request.
void fill_text_call(pipeline::Call& call, InferenceRequest& r, std::optional<std::string> upload) {
  call.generation = std::move(r.generation);
  call.parameters_path = "parameters";
  call.text.system = r.system;
  if (call.task == runtime::Task::kImageCaption) {
    call.text.style = r.raw ? pipeline::PromptStyle::kRaw : pipeline::PromptStyle::kInstruct;
    call.text.prompt = r.caption_prompt;
    call.image = upload ? pipeline::ImageInput{.data = std::move(*upload), .is_bytes = true}
                        : pipeline::ImageInput{.data = std::move(*r.input), .is_bytes = false};
  } else {
    // An instruction-tuned model gets the input as a user turn; "raw": true as a completion.
    call.text.style = r.raw ? pipeline::PromptStyle::kRaw : pipeline::PromptStyle::kInstruct;
    call.text.prompt = std::move(*r.input);
    // The output is the model's text as written (reasoning included): a schema constrains it.
    call.text.format.json_schema = std::move(r.json_schema);
    call.text.format.schema_field = "parameters.json_schema";
    call.text.format.reasoning = engine::ReasoningFormat::kInline;
  }
}

void answer_text(const Services& services, Exchange& ex, ApiResponse& res) {
  const char* task = runtime::task_name(ex.call.task);
  const pipeline::Submission s = submit_call(services, ex);
  const std::string id = new_request_id("inf-");
  const std::string model_id = s.model;
  note_submission(ex, s, id, ex.call.stream);

  if (!ex.call.stream) {
    const auto& outcome = wait_for_answer(ex.call, *s.generation);
    throw_if_failed(outcome);
    const Json out = {{"id", id},
                      {"task", task},
                      {"model", model_id},
                      {"route", ex.call.executor},
                      {"output", outcome.result.text},
                      {"finish_reason", engine::finish_reason_name(outcome.result.reason)},
                      {"usage", usage_json(outcome.result)},
                      {"timings", timings_json(outcome)}};
    write_json(res, out);
    return;
  }
  counted_stream_generation(
      ex.shared_from_this(), res, s.generation,
      {.keep_alive = s.keep_alive,
       .opening = nullptr,
       .piece =
           [id, task](std::string_view piece) {
             return sse_event(Json{{"id", id}, {"task", task}, {"output", piece}});
           },
       .closing =
           [id, model_id, task, route = ex.call.executor](const scheduler::GenerationOutcome& o) {
             Json end = {{"id", id},
                         {"task", task},
                         {"model", model_id},
                         {"route", route},
                         {"output", ""},
                         {"finish_reason", engine::finish_reason_name(o.result.reason)},
                         {"usage", usage_json(o.result)},
                         {"timings", timings_json(o)}};
             return sse_event(end) + sse_done();
           }});
}

}  // namespace

std::vector<Route> inference_routes(const Services& services) {
  return {
      {"POST", "/v1/inference", [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
         InferenceInput in = read_input(req);
         // The task's label for metrics and the log, once it is a known one.
         if (const auto it = in.body.find("task"); it != in.body.end() && it->is_string()) {
           const auto& task = it->get_ref<const std::string&>();
           if (task == "text-gen" || task == "image-caption" || task == "speech-transcribe" ||
               task == "embed") {
             note_task(ex, task);
           }
           if (task == "embed") {
             if (in.upload) {
               throw Error(ErrorCode::kInvalidInput,
                           "task 'embed' takes no uploaded file; send 'input' as text", "input");
             }
             answer_embed_inference(services, ex, res, in.body);
             return;
           }
         }
         InferenceRequest r = parse_inference_request(in.body, in.upload.has_value());
         auto& call = ex.call;
         call.model = r.model;
         call.stream = r.stream;
         call.store = r.store;
         call.data_class = pipeline::stricter_data_class(call.data_class, r.data_class);
         if (r.task == "speech-transcribe") {
           call.task = runtime::Task::kSpeechTranscribe;
           call.speech = r.speech;
           call.audio = in.upload
                            ? pipeline::AudioInput{.data = std::move(*in.upload), .is_bytes = true}
                            : pipeline::AudioInput{.data = std::move(*r.input), .is_bytes = false};
           call.audio->language_field = "parameters.language";
           call.audio->translate_field = "parameters.translate";
           answer_speech_inference(services, ex, res);
           return;
         }
         call.task = r.task == "text-gen" ? runtime::Task::kTextGen : runtime::Task::kImageCaption;
         fill_text_call(call, r, std::move(in.upload));
         answer_text(services, ex, res);
       }}};
}

}  // namespace mmserve::http
