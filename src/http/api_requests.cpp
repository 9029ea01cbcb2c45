#include "http/api_requests.h"

#include "core/error.h"
#include "engine/vision_model.h"
#include "http/answer_format_request.h"
#include "http/text_params.h"

namespace mmserve::http {
namespace {

constexpr const char* kValidTasks = "text-gen, image-caption, speech-transcribe, embed";

[[noreturn]] void invalid(const std::string& message, const std::string& field) {
  throw Error(ErrorCode::kInvalidInput, message, field);
}

// Fields every OpenAI text endpoint accepts at their no-op values (OpenAI's defaults); any other
// value is refused rather than silently ignored.
std::vector<NoOpField> openai_no_ops() {
  return {{"n", {1}},
          {"presence_penalty", {0}},
          {"frequency_penalty", {0}},
          {"service_tier", {"auto", "default"}}};
}

// Sampling and length fields implemented by read_generation_params, plus what both endpoints
// read themselves, and `extra`. "model": a name or alias from the registry (read_model_name);
// "user": the client's end-user id, metadata that changes nothing.
std::vector<std::string_view> openai_fields(std::initializer_list<std::string_view> extra) {
  std::vector<std::string_view> fields = {
      "model",        "max_tokens",     "temperature",    "top_p", "top_k",
      "min_p",        "repeat_penalty", "seed",           "stop",  "ignore_eos",
      "cache_prompt", "stream",         "stream_options", "user",  "logit_bias",
      "store",  // "store": whether the call may be captured (stages/capture)
      "lora"};  // LoRA adapters (http/lora_request.h)
  fields.insert(fields.end(), extra);
  return fields;
}

// "model": which model serves the request; "" = the task's default.
std::string read_model_name(const Json& body) {
  auto name = opt_string(body, "model", "").value_or("");
  if (name.size() > 256) invalid("field 'model' is longer than 256 bytes", "model");
  return name;
}

StreamChoice read_stream_choice(const Json& body) {
  StreamChoice s;
  s.stream = opt_bool(body, "stream", "").value_or(false);
  if (const Json* options = opt_object(body, "stream_options", "")) {
    reject_unsupported_fields(*options, "stream_options", {"include_usage"});
    s.include_usage = opt_bool(*options, "include_usage", "stream_options").value_or(false);
  }
  return s;
}

std::vector<ChatContentPart> read_content(const Json& content, const std::string& path) {
  if (content.is_string()) {
    return {{.is_image = false, .value = content.get<std::string>(), .field = path}};
  }
  if (!content.is_array()) {
    invalid("field '" + path + "' must be a string or an array of parts", path);
  }
  std::vector<ChatContentPart> parts;
  for (size_t i = 0; i < content.size(); ++i) {
    const auto& part = content[i];
    const std::string part_path = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) {
      invalid("field '" + part_path + "' must be an object", part_path);
    }
    const auto type = opt_string(part, "type", part_path).value_or("");
    if (type == "text") {
      reject_unsupported_fields(part, part_path, {"type", "text"});
      parts.push_back({.is_image = false,
                       .value = opt_string(part, "text", part_path).value_or(""),
                       .field = part_path + ".text"});
    } else if (type == "image_url") {
      reject_unsupported_fields(part, part_path, {"type", "image_url"});
      // {"image_url": {"url": "...", "detail": "auto"}}, or the bare string some clients send.
      // "detail" is accepted and changes nothing: a projector has one input resolution.
      const auto it = part.find("image_url");
      std::string url;
      std::string url_path = part_path + ".image_url";
      if (it != part.end() && it->is_string()) {
        url = it->get<std::string>();
      } else if (it != part.end() && it->is_object()) {
        reject_unsupported_fields(*it, url_path, {"url"}, {{"detail", {"auto", "low", "high"}}});
        url = opt_string(*it, "url", url_path).value_or("");
        url_path += ".url";
      }
      if (url.empty()) {
        invalid("field '" + url_path + "' (the image URL) is required", url_path);
      }
      parts.push_back({.is_image = true,
                       .value = std::move(url),
                       .field = url_path,
                       .type_field = part_path + ".type"});
    } else if (type == "input_audio") {
      throw Error(ErrorCode::kModelUnavailable,
                  "content of type '" + type +
                      "' needs a multimodal model, which this server has not loaded",
                  part_path + ".type");
    } else {
      invalid("unknown content part type '" + type + "'", part_path + ".type");
    }
  }
  return parts;
}

}  // namespace

std::vector<ChatMessageRequest> read_messages(const Json& body) {
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    invalid("field 'messages' must be a non-empty array", "messages");
  }
  std::vector<ChatMessageRequest> messages;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      invalid("field '" + path + "' must be an object", path);
    }
    auto role = opt_string(m, "role", path);
    if (!role) {
      invalid("field '" + path + ".role' is required", path + ".role");
    }
    if (*role == "developer") {
      role = "system";  // OpenAI's newer name for the system role
    }
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool") {
      invalid("role '" + *role + "' is not supported; use system, user, assistant or tool",
              path + ".role");
    }
    ChatMessageRequest message{.role = *role, .parts = {}};
    if (*role == "assistant") {
      reject_unsupported_fields(m, path, {"role", "content", "tool_calls", "reasoning_content"},
                                {{"name", {}}, {"refusal", {}}});
      message.reasoning_content = opt_string(m, "reasoning_content", path).value_or("");
      if (const auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
        message.tool_calls = read_tool_calls(*calls, path + ".tool_calls");
      }
    } else if (*role == "tool") {
      reject_unsupported_fields(m, path, {"role", "content", "tool_call_id", "name"});
      message.tool_call_id = opt_string(m, "tool_call_id", path).value_or("");
      if (message.tool_call_id.empty()) {
        invalid("field '" + path + ".tool_call_id' is required for a tool message",
                path + ".tool_call_id");
      }
      message.name = opt_string(m, "name", path).value_or("");
    } else {
      reject_unsupported_fields(m, path, {"role", "content"}, {{"name", {}}});
    }
    const auto content = m.find("content");
    if (content != m.end() && !content->is_null()) {
      message.parts = read_content(*content, path + ".content");
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

namespace {

// The parameters each task implements; anything else answers 400 naming it. ("stream" may
// also be given inside parameters.)
void reject_unsupported_parameters(const std::string& task, const Json& params) {
  std::vector<std::string_view> fields;
  if (task == "text-gen" || task == "image-caption") {
    fields = {"max_tokens", "temperature",    "top_p",      "top_k",        "min_p", "stop",
              "seed",       "repeat_penalty", "ignore_eos", "cache_prompt", "raw",   "system",
              "stream",     "data_class",     "store",      "lora"};
    if (task == "image-caption") {
      fields.emplace_back("prompt");
    } else {
      fields.emplace_back("json_schema");
    }
  } else {
    fields = {"language", "translate",   "timestamps", "words",
              "prompt",   "temperature", "stream",     "data_class"};
  }
  reject_unsupported_fields(params, "parameters", fields);
}

SpeechParams read_speech_params(const Json& params) {
  SpeechParams s;
  s.language = opt_string(params, "language", "parameters").value_or("");
  s.translate = opt_bool(params, "translate", "parameters").value_or(false);
  s.prompt = opt_string(params, "prompt", "parameters").value_or("");
  if (const auto t = opt_number(params, "temperature", "parameters")) {
    s.temperature = checked_speech_temperature(*t, "parameters.temperature");
  }
  s.words = opt_bool(params, "words", "parameters").value_or(false);
  s.timestamps = opt_bool(params, "timestamps", "parameters").value_or(false) || s.words;
  return s;
}

}  // namespace

float checked_speech_temperature(double t, const std::string& field) {
  if (!(t >= 0 && t <= 1)) {
    invalid("field '" + field + "' must be between 0 and 1", field);
  }
  return static_cast<float>(t);
}

ChatRequest parse_chat_request(const Json& body) {
  auto no_ops = openai_no_ops();
  no_ops.push_back({"logprobs", {false}});
  no_ops.push_back({"top_logprobs", {0}});
  no_ops.push_back({"modalities", {Json::array({"text"})}});
  reject_unsupported_fields(body, "",
                            openai_fields({"messages", "max_completion_tokens", "tools",
                                           "tool_choice", "parallel_tool_calls", "response_format",
                                           "reasoning_format", "chat_template_kwargs"}),
                            no_ops);
  ChatRequest r;
  r.model = read_model_name(body);
  r.messages = read_messages(body);
  r.format = read_chat_answer_format(body);
  read_generation_params(body, "", r.generation, {"max_completion_tokens", "max_tokens"});
  r.stream = read_stream_choice(body);
  r.store = opt_bool(body, "store", "");
  return r;
}

CompletionRequest parse_completion_request(const Json& body) {
  auto no_ops = openai_no_ops();
  no_ops.push_back({"echo", {false}});
  no_ops.push_back({"best_of", {1}});
  no_ops.push_back({"suffix", {""}});
  reject_unsupported_fields(body, "", openai_fields({"prompt", "logprobs"}), no_ops);
  CompletionRequest r;
  r.model = read_model_name(body);
  const auto it = body.find("prompt");
  if (it != body.end() && it->is_string()) {
    r.prompt = it->get<std::string>();
  } else if (it != body.end() && it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    r.prompt = (*it)[0].get<std::string>();
  } else {
    invalid("field 'prompt' must be a string (or an array of one string)", "prompt");
  }
  if (r.prompt.empty()) {
    invalid("field 'prompt' is empty", "prompt");
  }
  read_generation_params(body, "", r.generation);
  r.stream = read_stream_choice(body);
  r.store = opt_bool(body, "store", "");
  if (auto n = opt_integer(body, "logprobs", "")) {
    if (*n < 0 || *n > 20) {
      invalid("logprobs must be between 0 and 20", "logprobs");
    }
    if (*n > 0 && r.stream.stream) {
      invalid("logprobs is supported without stream only", "logprobs");
    }
    r.generation.top_logprobs = static_cast<int32_t>(*n);
  }
  return r;
}

InferenceRequest parse_inference_request(const Json& body, bool has_upload) {
  reject_unsupported_fields(body, "", {"task", "input", "parameters", "stream", "model"});
  InferenceRequest r;
  r.model = read_model_name(body);
  const auto task = opt_string(body, "task", "");
  if (!task) {
    invalid(std::string("field 'task' is required; valid tasks: ") + kValidTasks, "task");
  }
  if (*task != "text-gen" && *task != "image-caption" && *task != "speech-transcribe") {
    invalid("unknown task '" + *task + "'; valid tasks: " + kValidTasks, "task");
  }
  r.task = *task;
  static const Json kNoParameters = Json::object();
  const Json* given = opt_object(body, "parameters", "");
  const Json& params = given != nullptr ? *given : kNoParameters;
  reject_unsupported_parameters(r.task, params);
  r.stream = opt_bool(body, "stream", "").value_or(false) ||
             opt_bool(params, "stream", "parameters").value_or(false);
  r.input = opt_string(body, "input", "");
  if (const auto data_class = opt_string(params, "data_class", "parameters")) {
    r.data_class = pipeline::parse_data_class(*data_class, "parameters.data_class");
  }
  if (has_upload && r.task == "text-gen") {
    invalid("task 'text-gen' takes no uploaded file; send 'input' as text", "input");
  }
  if (r.task == "speech-transcribe") {
    r.speech = read_speech_params(params);
    if (!has_upload && !r.input) {
      invalid("field 'input' (the audio: base64, a data URL, or an uploaded file) is required",
              "input");
    }
    return r;
  }
  read_generation_params(params, "parameters", r.generation);
  r.store = opt_bool(params, "store", "parameters");
  r.raw = opt_bool(params, "raw", "parameters").value_or(false);
  r.system = opt_string(params, "system", "parameters");
  if (const auto schema = params.find("json_schema");
      r.task == "text-gen" && schema != params.end() && !schema->is_null()) {
    r.json_schema = read_schema(*schema, "parameters.json_schema");
  }
  if (r.task == "text-gen") {
    if (!r.input) {
      invalid("field 'input' (the prompt text) is required", "input");
    }
    if (r.input->empty()) {
      invalid("field 'input' is empty", "input");
    }
  } else {
    r.caption_prompt =
        opt_string(params, "prompt", "parameters").value_or(engine::kDefaultCaptionPrompt);
    if (!has_upload && !r.input) {
      invalid("field 'input' (the image: base64, a data URL, or an uploaded file) is required",
              "input");
    }
  }
  return r;
}

}  // namespace mmserve::http
