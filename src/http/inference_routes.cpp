// POST /v1/inference: the product's own task API.
//   {"input": "...", "task": "text-gen", "parameters": {"max_tokens": 200, ...}, "stream": false}
//   -> {"id", "task", "model", "output", "finish_reason", "usage", "timings"}
// Tasks: "text-gen" (input: the prompt) and "image-caption" (input: the image as base64 or a
// data URL; parameters.prompt: what to ask). The same fields may come as multipart/form-data,
// the image as an uploaded file ("input", "image" or "file"), "parameters" as a JSON string.
// "speech-transcribe" (input: the audio as base64, a data URL or an uploaded file) is served by
// audio_routes.cpp.
#include <optional>
#include <string>

#include "core/error.h"
#include "http/api_requests.h"
#include "http/audio_routes.h"
#include "http/image_input.h"
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

InferenceInput read_input(const httplib::Request& req) {
  if (!req.is_multipart_form_data()) return {parse_json_object(req.body), std::nullopt};
  InferenceInput in{Json::object(), std::nullopt};
  const auto set_upload = [&](const std::string& name, const std::string& content) {
    if (in.upload || in.body.contains("input")) {
      throw Error(ErrorCode::kInvalidInput, "more than one input file or field in the form", name);
    }
    in.upload = content;
  };
  const auto text_field = [&](const std::string& name, const std::string& content) {
    if (name == "image" || name == "file") return set_upload(name, content);
    if (in.body.contains(name) || (name == "input" && in.upload)) {
      throw Error(ErrorCode::kInvalidInput, "form field '" + name + "' is given twice", name);
    }
    if (name == "parameters") {
      try {
        in.body["parameters"] = parse_json_object(content);
      } catch (const Error& e) {
        throw Error(e.code(), std::string("form field 'parameters': ") + e.what(), "parameters");
      }
    } else if (name == "task" || name == "input" || name == "model") {
      in.body[name] = content;
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
  for (const auto& [name, field] : req.form.fields) text_field(name, field.content);
  for (const auto& [name, file] : req.form.files) {
    if (name == "input" || name == "image" || name == "file") {
      set_upload(name, file.content);
    } else {
      text_field(name, file.content);  // a text field sent as a file part
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

void submit_and_answer(engine::GenerationRequest request, const char* task, bool stream,
                       const runtime::ModelLease& lease, runtime::Runtime& rt,
                       const httplib::Request& req, httplib::Response& res);

void handle_text_gen(InferenceRequest r, runtime::Runtime& rt, const httplib::Request& req,
                     httplib::Response& res) {
  const auto lease = acquire_model(rt, runtime::Task::kTextGen, r.model);
  const auto& model = lease->text().model();
  // An instruction-tuned model (one with a chat template) gets the input as a user turn, as
  // Ollama's and llama-server's users expect; "raw": true sends it as a plain completion.
  if (model.has_chat_template() && !r.raw) {
    std::vector<engine::ChatMessage> messages;
    if (r.system) messages.push_back({"system", *r.system});
    messages.push_back({"user", *r.input});
    r.generation.prompt = model.tokenize(model.apply_chat_template(messages), true, true);
  } else {
    r.generation.prompt = model.tokenize(*r.input, true, false);
  }
  submit_and_answer(std::move(r.generation), "text-gen", r.stream, lease, rt, req, res);
}

void submit_and_answer(engine::GenerationRequest request, const char* task, bool stream,
                       const runtime::ModelLease& lease, runtime::Runtime& rt,
                       const httplib::Request& req, httplib::Response& res) {
  auto& text = lease->text();

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
  const std::string model_id = lease->name();
  note_generation(generation, id, stream);

  if (!stream) {
    const auto& outcome = wait_for_answer(req, *generation);
    throw_if_failed(outcome);
    const Json out = {{"id", id},
                      {"task", task},
                      {"model", model_id},
                      {"output", outcome.result.text},
                      {"finish_reason", engine::finish_reason_name(outcome.result.reason)},
                      {"usage", usage_json(outcome.result)},
                      {"timings", timings_json(outcome)}};
    write_json(res, out);
    return;
  }
  counted_stream_generation(
      res, generation,
      {.keep_alive = lease,
       .opening = nullptr,
       .piece =
           [id, task](std::string_view piece) {
             return sse_event(Json{{"id", id}, {"task", task}, {"output", piece}});
           },
       .closing =
           [id, model_id, task](const scheduler::GenerationOutcome& o) {
             Json end = {{"id", id},
                         {"task", task},
                         {"model", model_id},
                         {"output", ""},
                         {"finish_reason", engine::finish_reason_name(o.result.reason)},
                         {"usage", usage_json(o.result)},
                         {"timings", timings_json(o)}};
             return sse_event(end) + sse_done();
           }});
}

void handle_image_caption(InferenceRequest r, std::optional<std::string> upload,
                          runtime::Runtime& rt, const httplib::Request& req,
                          httplib::Response& res) {
  const auto lease = acquire_model(rt, runtime::Task::kImageCaption, r.model);
  const auto& vision = lease->vision();  // the registry gave a model with a projector
  const ImageInputPolicy policy = image_policy(rt.options());
  media::Image image = upload ? image_from_bytes(*upload, policy, "input")
                              : image_from_string(*r.input, policy, "input");
  auto tokenized =
      vision->tokenize(vision->caption_prompt(1, r.caption_prompt, r.raw, r.system.value_or("")),
                       std::span(&image, 1), true, "input");
  r.generation.prompt = std::move(tokenized.tokens);
  r.generation.media = std::move(tokenized.media);
  metrics::server_metrics().add_images(1);
  submit_and_answer(std::move(r.generation), "image-caption", r.stream, lease, rt, req, res);
}

}  // namespace

void register_inference_routes(httplib::Server& server, runtime::Runtime& rt) {
  server.Post("/v1/inference", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      InferenceInput in = read_input(req);
      // The task's label for metrics and the log, once it is a known one.
      if (const auto it = in.body.find("task"); it != in.body.end() && it->is_string()) {
        const auto& task = it->get_ref<const std::string&>();
        if (task == "text-gen" || task == "image-caption" || task == "speech-transcribe") {
          note_task(task);
        }
      }
      InferenceRequest r = parse_inference_request(in.body, in.upload.has_value());
      if (r.task == "text-gen") {
        handle_text_gen(std::move(r), rt, req, res);
      } else if (r.task == "image-caption") {
        handle_image_caption(std::move(r), std::move(in.upload), rt, req, res);
      } else {
        handle_speech_transcribe(r.model, r.speech, r.input, std::move(in.upload), rt, req, res);
      }
    });
  });
}

}  // namespace mmserve::http
