// OpenAI-compatible endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.
// Shapes follow the OpenAI API reference so that its client libraries work unchanged.
#include <chrono>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/text_stream.h"
#include "http/image_input.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/request_log.h"
#include "http/routes.h"
#include "http/streaming.h"
#include "http/text_params.h"
#include "metrics/server_metrics.h"

namespace mmserve::http {
namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Json usage_json(const engine::SequenceResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_prompt_tokens}}}};
}

// OpenAI knows "stop" and "length" only; a failed or cancelled request ends with its error
// instead of a finish reason (streaming.h).
const char* openai_finish_reason(const engine::SequenceResult& r) {
  return r.reason == engine::FinishReason::kLength ? "length" : "stop";
}

// Fields every OpenAI text endpoint accepts at their no-op values (OpenAI's defaults); any other
// value is refused rather than silently ignored.
std::vector<NoOpField> openai_no_ops() {
  return {{"n", {1}},
          {"presence_penalty", {0}},
          {"frequency_penalty", {0}},
          {"logit_bias", {Json::object()}},
          {"store", {false}},
          {"service_tier", {"auto", "default"}}};
}

// Sampling and length fields implemented by read_generation_params, plus what both endpoints
// read themselves, and `extra`. "model": the one loaded text model answers to any name (as
// llama-server); "user": the client's end-user id, metadata that changes nothing.
std::vector<std::string_view> openai_fields(std::initializer_list<std::string_view> extra) {
  std::vector<std::string_view> fields = {
      "model", "max_tokens", "temperature",    "top_p",  "top_k", "min_p", "repeat_penalty",
      "seed",  "stop",       "ignore_eos",     "stream", "stream_options", "user"};
  fields.insert(fields.end(), extra);
  return fields;
}

void reject_unsupported_chat_fields(const Json& body) {
  auto no_ops = openai_no_ops();
  no_ops.push_back({"logprobs", {false}});
  no_ops.push_back({"top_logprobs", {0}});
  no_ops.push_back({"tools", {Json::array()}});
  no_ops.push_back({"tool_choice", {"none"}});
  no_ops.push_back({"parallel_tool_calls", {true, false}});
  no_ops.push_back({"response_format", {Json{{"type", "text"}}}});
  no_ops.push_back({"modalities", {Json::array({"text"})}});
  reject_unsupported_fields(body, "", openai_fields({"messages", "max_completion_tokens"}),
                            no_ops);
}

void reject_unsupported_completion_fields(const Json& body) {
  auto no_ops = openai_no_ops();
  no_ops.push_back({"echo", {false}});
  no_ops.push_back({"best_of", {1}});
  no_ops.push_back({"suffix", {""}});
  reject_unsupported_fields(body, "", openai_fields({"prompt", "logprobs"}), no_ops);
}

void reject_unsupported_stream_options(const Json& body) {
  if (const Json* options = opt_object(body, "stream_options", "")) {
    reject_unsupported_fields(*options, "stream_options", {"include_usage"});
  }
}

// The images of a chat request, in the order their markers appear in the messages.
struct ChatImages {
  runtime::Runtime& rt;
  std::shared_ptr<const engine::VisionModel> vision;  // resolved at the first image
  std::vector<media::Image> images;

  // Decodes an image_url part and returns the marker that stands for it in the text.
  std::string add(const Json& part, const std::string& path) {
    if (!vision) {
      rt.text();  // a server still loading answers 503, not "no projector"
      vision = rt.vision();
      if (!vision) {
        throw Error(ErrorCode::kModelUnavailable,
                    "content of type 'image_url' needs a vision model and projector (--mmproj), "
                    "which this server has not loaded",
                    path + ".type");
      }
    }
    // {"image_url": {"url": "...", "detail": "auto"}}, or the bare string some clients send.
    const auto it = part.find("image_url");
    std::string url;
    std::string url_path = path + ".image_url";
    if (it != part.end() && it->is_string()) {
      url = it->get<std::string>();
    } else if (it != part.end() && it->is_object()) {
      url_path += ".url";
      url = opt_string(*it, "url", path + ".image_url").value_or("");
    }
    if (url.empty()) {
      throw Error(ErrorCode::kInvalidInput, "field '" + url_path + "' (the image URL) is required",
                  url_path);
    }
    images.push_back(image_from_string(url, image_policy(rt.options()), url_path));
    return vision->marker();
  }
};

std::string message_text(const Json& content, const std::string& path, ChatImages& images) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + path + "' must be a string or an array of parts", path);
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const auto& part = content[i];
    const std::string part_path = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) {
      throw Error(ErrorCode::kInvalidInput, "field '" + part_path + "' must be an object",
                  part_path);
    }
    const auto type = opt_string(part, "type", part_path).value_or("");
    if (type == "text") {
      text += opt_string(part, "text", part_path).value_or("");
    } else if (type == "image_url") {
      text += images.add(part, part_path);
    } else if (type == "input_audio") {
      throw Error(ErrorCode::kModelUnavailable,
                  "content of type '" + type +
                      "' needs a multimodal model, which this server has not loaded",
                  part_path + ".type");
    } else {
      throw Error(ErrorCode::kInvalidInput, "unknown content part type '" + type + "'",
                  part_path + ".type");
    }
  }
  return text;
}

std::vector<engine::ChatMessage> read_messages(const Json& body, ChatImages& images) {
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    throw Error(ErrorCode::kInvalidInput, "field 'messages' must be a non-empty array", "messages");
  }
  std::vector<engine::ChatMessage> messages;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!m.is_object())
      throw Error(ErrorCode::kInvalidInput, "field '" + path + "' must be an object", path);
    reject_unsupported_fields(m, path, {"role", "content"}, {{"name", {}}, {"refusal", {}}});
    auto role = opt_string(m, "role", path);
    if (!role)
      throw Error(ErrorCode::kInvalidInput, "field '" + path + ".role' is required",
                  path + ".role");
    if (*role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (*role != "system" && *role != "user" && *role != "assistant") {
      throw Error(ErrorCode::kInvalidInput,
                  "role '" + *role + "' is not supported; use system, user or assistant",
                  path + ".role");
    }
    const auto content = m.find("content");
    std::string text;
    if (content != m.end() && !content->is_null()) {
      text = message_text(*content, path + ".content", images);
    }
    messages.push_back({*role, std::move(text)});
  }
  return messages;
}

struct Prepared {
  std::shared_ptr<scheduler::Generation> generation;
  bool stream = false;
  bool include_usage = false;
  std::string model_id;
};

Prepared submit(const Json& body, engine::GenerationRequest request, runtime::Runtime& rt,
                std::optional<int32_t> default_max_tokens) {
  auto& text = rt.text();
  Prepared p;
  p.stream = opt_bool(body, "stream", "").value_or(false);
  if (const Json* options = opt_object(body, "stream_options", "")) {
    p.include_usage = opt_bool(*options, "include_usage", "stream_options").value_or(false);
  }
  if (request.max_tokens == 0 && default_max_tokens) {
    const auto room = text.sequence_capacity() - static_cast<int32_t>(request.prompt.size());
    request.max_tokens = std::max(1, std::min(*default_max_tokens, room));
  }
  p.model_id = text.model().id();
  p.generation = text.submit(std::move(request),
                             scheduler::Generation::Clock::now() + rt.options().request_timeout);
  return p;
}

void chat_completions(const httplib::Request& req, httplib::Response& res, runtime::Runtime& rt) {
  const Json body = parse_json_object(req.body);
  reject_unsupported_chat_fields(body);
  reject_unsupported_stream_options(body);
  ChatImages images{rt, nullptr, {}};
  const auto messages = read_messages(body, images);
  auto& text = rt.text();
  engine::GenerationRequest request;
  read_generation_params(body, "", request, {"max_completion_tokens", "max_tokens"});
  // Like llama-server: a model without a chat template is prompted in ChatML.
  const std::string prompt = text.model().apply_chat_template(messages, "chatml");
  if (images.images.empty()) {
    request.prompt = text.model().tokenize(prompt, true, true);
  } else {
    auto tokenized = images.vision->tokenize(prompt, images.images, true, "messages");
    request.prompt = std::move(tokenized.tokens);
    request.media = std::move(tokenized.media);
    metrics::server_metrics().add_images(static_cast<int64_t>(images.images.size()));
  }
  Prepared p = submit(body, std::move(request), rt, std::nullopt);
  const std::string id = new_request_id("chatcmpl-");
  const int64_t created = unix_now();
  note_generation(p.generation, id, p.stream);

  if (!p.stream) {
    const auto& o = wait_for_answer(req, *p.generation);
    throw_if_failed(o);
    const Json out = {{"id", id},
                      {"object", "chat.completion"},
                      {"created", created},
                      {"model", p.model_id},
                      {"choices",
                       {{{"index", 0},
                         {"message", {{"role", "assistant"}, {"content", o.result.text}}},
                         {"logprobs", nullptr},
                         {"finish_reason", openai_finish_reason(o.result)}}}},
                      {"usage", usage_json(o.result)}};
    write_json(res, out);
    return;
  }
  auto chunk = [id, created, model = p.model_id](const Json& delta, const Json& finish) {
    return Json{
        {"id", id},
        {"object", "chat.completion.chunk"},
        {"created", created},
        {"model", model},
        {"choices",
         {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}}}};
  };
  counted_stream_generation(
      res, p.generation,
      {.opening =
           [chunk] {
             return sse_event(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
           },
       .piece =
           [chunk](std::string_view t) {
             return sse_event(chunk({{"content", t}}, nullptr));
           },
       .closing =
           [chunk, id, created, model = p.model_id,
            usage = p.include_usage](const scheduler::GenerationOutcome& o) {
             std::string out;
             out += sse_event(chunk(Json::object(), openai_finish_reason(o.result)));
             if (usage) {
               out += sse_event(Json{{"id", id},
                                     {"object", "chat.completion.chunk"},
                                     {"created", created},
                                     {"model", model},
                                     {"choices", Json::array()},
                                     {"usage", usage_json(o.result)}});
             }
             return out + sse_done();
           }});
}

// The legacy completions "logprobs" object: per generated token its text, logprob, the most
// likely alternatives and its offset in the text. Pieces of a split character show as U+FFFD.
Json legacy_logprobs(const engine::SequenceResult& r) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  size_t offset = 0;
  for (const auto& t : r.logprobs) {
    tokens.push_back(sanitize_utf8(t.piece));
    token_logprobs.push_back(t.logprob);
    Json alternatives = Json::object();
    for (const auto& [piece, lp] : t.top) alternatives[sanitize_utf8(piece)] = lp;
    top.push_back(alternatives);
    offsets.push_back(offset);
    offset += t.piece.size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

void completions(const httplib::Request& req, httplib::Response& res, runtime::Runtime& rt) {
  const Json body = parse_json_object(req.body);
  reject_unsupported_completion_fields(body);
  reject_unsupported_stream_options(body);
  std::string prompt;
  const auto it = body.find("prompt");
  if (it != body.end() && it->is_string()) {
    prompt = it->get<std::string>();
  } else if (it != body.end() && it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    prompt = (*it)[0].get<std::string>();
  } else {
    throw Error(ErrorCode::kInvalidInput,
                "field 'prompt' must be a string (or an array of one string)", "prompt");
  }
  if (prompt.empty()) throw Error(ErrorCode::kInvalidInput, "field 'prompt' is empty", "prompt");
  auto& text = rt.text();
  engine::GenerationRequest request;
  read_generation_params(body, "", request);
  if (auto n = opt_integer(body, "logprobs", "")) {
    if (*n < 0 || *n > 20) {
      throw Error(ErrorCode::kInvalidInput, "logprobs must be between 0 and 20", "logprobs");
    }
    if (*n > 0 && opt_bool(body, "stream", "").value_or(false)) {
      throw Error(ErrorCode::kInvalidInput, "logprobs is supported without stream only",
                  "logprobs");
    }
    request.top_logprobs = static_cast<int32_t>(*n);
  }
  request.prompt = text.model().tokenize(prompt, true, false);
  Prepared p = submit(body, std::move(request), rt, 16);  // OpenAI's documented default
  const std::string id = new_request_id("cmpl-");
  const int64_t created = unix_now();
  note_generation(p.generation, id, p.stream);
  auto choice = [](std::string_view t, const Json& finish) {
    return Json{{"text", t}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  };
  if (!p.stream) {
    const auto& o = wait_for_answer(req, *p.generation);
    throw_if_failed(o);
    Json out = {{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", p.model_id},
                {"choices", Json::array({choice(o.result.text, openai_finish_reason(o.result))})},
                {"usage", usage_json(o.result)}};
    if (!o.result.logprobs.empty()) out["choices"][0]["logprobs"] = legacy_logprobs(o.result);
    write_json(res, out);
    return;
  }
  auto event = [id, created, model = p.model_id](const Json& choices) {
    return Json{{"id", id},
                {"object", "text_completion"},
                {"created", created},
                {"model", model},
                {"choices", choices}};
  };
  counted_stream_generation(
      res, p.generation,
      {.opening = nullptr,
       .piece =
           [event, choice](std::string_view t) {
             return sse_event(event(Json::array({choice(t, nullptr)})));
           },
       .closing =
           [event, choice, usage = p.include_usage](const scheduler::GenerationOutcome& o) {
             Json last = event(Json::array({choice("", openai_finish_reason(o.result))}));
             if (usage) last["usage"] = usage_json(o.result);
             return sse_event(last) + sse_done();
           }});
}

}  // namespace

void register_openai_routes(httplib::Server& server, runtime::Runtime& rt) {
  server.Post("/v1/chat/completions", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { chat_completions(req, res, rt); });
  });
  server.Post("/v1/completions", [&rt](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { completions(req, res, rt); });
  });
  server.Get("/v1/models", [&rt](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      Json data = Json::array();
      if (rt.state() == runtime::State::kReady && rt.has_text()) {
        const auto& model = rt.text().model();
        data.push_back({{"id", model.id()},
                        {"object", "model"},
                        {"created", std::chrono::duration_cast<std::chrono::seconds>(
                                        rt.loaded_at().time_since_epoch())
                                        .count()},
                        {"owned_by", "mmserve"},
                        {"meta",
                         {{"path", model.path()},
                          {"architecture", model.summary().architecture},
                          {"parameters", model.summary().n_params},
                          {"context_length", model.n_ctx_train()}}}});
        if (const auto vision = rt.vision()) {
          const auto& info = vision->info();
          data.back()["meta"]["vision"] = {{"projector", info.type},
                                           {"mmproj", vision->path()},
                                           {"image_size", info.image_size},
                                           {"tokens_per_image", info.tokens_per_image}};
        }
      }
      if (const auto speech = rt.state() == runtime::State::kReady ? rt.speech_model() : nullptr) {
        data.push_back({{"id", speech->id()},
                        {"object", "model"},
                        {"created", std::chrono::duration_cast<std::chrono::seconds>(
                                        rt.loaded_at().time_since_epoch())
                                        .count()},
                        {"owned_by", "mmserve"},
                        {"meta",
                         {{"path", speech->path()},
                          {"architecture", "whisper"},
                          {"size", speech->size_name()},
                          {"multilingual", speech->multilingual()},
                          {"tasks", Json::array({"speech-transcribe"})}}}});
      }
      write_json(res, Json{{"object", "list"}, {"data", data}});
    });
  });
}

}  // namespace mmserve::http
