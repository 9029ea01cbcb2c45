#include "http/responses_request.h"

#include "core/error.h"
#include "http/answer_format_request.h"
#include "http/text_params.h"

namespace mmserve::http {
namespace {

[[noreturn]] void invalid(const std::string& message, const std::string& field) {
  throw Error(ErrorCode::kInvalidInput, message, field);
}

// A message item's content: a string, or parts (input_text, output_text, input_image).
std::vector<ChatContentPart> read_parts(const Json& content, const std::string& path) {
  if (content.is_string()) {
    return {{.is_image = false, .value = content.get<std::string>(), .field = path}};
  }
  if (!content.is_array()) invalid("field '" + path + "' must be a string or an array", path);
  std::vector<ChatContentPart> parts;
  for (size_t i = 0; i < content.size(); ++i) {
    const auto& part = content[i];
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!part.is_object()) invalid("field '" + p + "' must be an object", p);
    const auto type = opt_string(part, "type", p).value_or("");
    if (type == "input_text" || type == "output_text") {
      reject_unsupported_fields(part, p, {"type", "text", "annotations", "logprobs"});
      parts.push_back({.is_image = false,
                       .value = opt_string(part, "text", p).value_or(""),
                       .field = p + ".text"});
    } else if (type == "input_image") {
      reject_unsupported_fields(part, p, {"type", "image_url"},
                                {{"detail", {"auto", "low", "high"}}});
      auto url = opt_string(part, "image_url", p).value_or("");
      if (url.empty()) {
        invalid("field '" + p + ".image_url' (a data URL or an http(s) URL) is required",
                p + ".image_url");
      }
      parts.push_back({.is_image = true,
                       .value = std::move(url),
                       .field = p + ".image_url",
                       .type_field = p + ".type"});
    } else {
      invalid("content part type '" + type +
                  "' is not supported; use input_text, input_image or output_text",
              p + ".type");
    }
  }
  return parts;
}

// Text of a reasoning item's summary or content parts.
std::string reasoning_text(const Json& item, const std::string& path) {
  std::string text;
  for (const char* key : {"summary", "content"}) {
    const auto it = item.find(key);
    if (it == item.end() || it->is_null()) continue;
    if (!it->is_array())
      invalid("field '" + path + "." + key + "' must be an array", path + "." + key);
    for (const auto& part : *it) {
      if (part.is_object() && part.contains("text") && part["text"].is_string()) {
        text += part["text"].get<std::string>();
      }
    }
  }
  return text;
}

std::vector<ChatMessageRequest> read_input(const Json& body) {
  const auto it = body.find("input");
  if (it == body.end() || it->is_null()) invalid("field 'input' is required", "input");
  if (it->is_string()) {
    if (it->get<std::string>().empty()) invalid("field 'input' is empty", "input");
    return {{.role = "user", .parts = read_parts(*it, "input")}};
  }
  if (!it->is_array() || it->empty()) {
    invalid("field 'input' must be a string or a non-empty array of items", "input");
  }
  std::vector<ChatMessageRequest> messages;
  std::string pending_reasoning;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& item = (*it)[i];
    const std::string path = "input[" + std::to_string(i) + "]";
    if (!item.is_object()) invalid("field '" + path + "' must be an object", path);
    const auto type = opt_string(item, "type", path).value_or("message");
    if (type == "message") {
      reject_unsupported_fields(item, path, {"type", "role", "content", "id", "status"});
      auto role = opt_string(item, "role", path).value_or("");
      if (role == "developer") role = "system";
      if (role != "user" && role != "system" && role != "assistant") {
        invalid("role '" + role + "' is not supported; use user, system, developer or assistant",
                path + ".role");
      }
      const auto content = item.find("content");
      if (content == item.end())
        invalid("field '" + path + ".content' is required", path + ".content");
      ChatMessageRequest m{.role = role, .parts = read_parts(*content, path + ".content")};
      if (role == "assistant") m.reasoning_content = std::exchange(pending_reasoning, {});
      messages.push_back(std::move(m));
    } else if (type == "function_call") {
      reject_unsupported_fields(item, path,
                                {"type", "call_id", "name", "arguments", "id", "status"});
      engine::ToolCall call{.id = opt_string(item, "call_id", path).value_or(""),
                            .name = opt_string(item, "name", path).value_or(""),
                            .arguments = opt_string(item, "arguments", path).value_or("{}")};
      if (call.id.empty() || call.name.empty()) {
        invalid("field '" + path + "' needs call_id and name", path);
      }
      if (!Json::accept(call.arguments)) {
        invalid("field '" + path + ".arguments' must be a JSON text", path + ".arguments");
      }
      // Consecutive calls are one assistant turn.
      if (messages.empty() || messages.back().role != "assistant" ||
          (!messages.back().parts.empty() && messages.back().tool_calls.empty())) {
        messages.push_back({.role = "assistant", .parts = {}});
        messages.back().reasoning_content = std::exchange(pending_reasoning, {});
      }
      messages.back().tool_calls.push_back(std::move(call));
    } else if (type == "function_call_output") {
      reject_unsupported_fields(item, path, {"type", "call_id", "output", "id", "status"});
      ChatMessageRequest m{.role = "tool", .parts = {}};
      m.tool_call_id = opt_string(item, "call_id", path).value_or("");
      if (m.tool_call_id.empty())
        invalid("field '" + path + ".call_id' is required", path + ".call_id");
      const auto output = item.find("output");
      if (output == item.end())
        invalid("field '" + path + ".output' is required", path + ".output");
      m.parts = output->is_string()
                    ? read_parts(*output, path + ".output")
                    : std::vector<ChatContentPart>{
                          {.is_image = false, .value = output->dump(), .field = path + ".output"}};
      messages.push_back(std::move(m));
    } else if (type == "reasoning") {
      // Sent back by clients that keep the history; it becomes the next assistant turn's.
      reject_unsupported_fields(
          item, path, {"type", "id", "summary", "content", "encrypted_content", "status"});
      pending_reasoning += reasoning_text(item, path);
    } else {
      invalid("input item type '" + type +
                  "' is not supported; use message, function_call, function_call_output or "
                  "reasoning",
              path + ".type");
    }
  }
  return messages;
}

void read_text_format(const Json& body, pipeline::AnswerFormat& format) {
  const Json* text = opt_object(body, "text", "");
  if (text == nullptr) return;
  reject_unsupported_fields(*text, "text", {"format"}, {{"verbosity", {"medium"}}});
  const Json* f = opt_object(*text, "format", "text");
  if (f == nullptr) return;
  const auto type = opt_string(*f, "type", "text.format").value_or("text");
  if (type == "text") {
    reject_unsupported_fields(*f, "text.format", {"type"});
  } else if (type == "json_object") {
    reject_unsupported_fields(*f, "text.format", {"type"});
    format.json_schema = "{\"type\":\"object\"}";
  } else if (type == "json_schema") {
    reject_unsupported_fields(*f, "text.format",
                              {"type", "name", "schema", "strict", "description"});
    const auto schema = f->find("schema");
    if (schema == f->end()) invalid("field 'text.format.schema' is required", "text.format.schema");
    format.json_schema = read_schema(*schema, "text.format.schema");
    format.schema_field = "text.format.schema";
  } else {
    invalid("field 'text.format.type' must be text, json_object or json_schema",
            "text.format.type");
  }
}

}  // namespace

ResponsesRequest parse_responses_request(const Json& body) {
  reject_unsupported_fields(body, "",
                            {"model",
                             "input",
                             "instructions",
                             "max_output_tokens",
                             "temperature",
                             "top_p",
                             "top_k",
                             "min_p",
                             "seed",
                             "stop",
                             "logit_bias",
                             "stream",
                             "tools",
                             "tool_choice",
                             "parallel_tool_calls",
                             "text",
                             "metadata",
                             "user",
                             "store",
                             "lora",
                             "reasoning_format"},
                            {{"truncation", {"disabled"}},
                             {"service_tier", {"auto", "default"}},
                             {"background", {false}},
                             {"include", {Json::array()}},
                             {"reasoning", {Json::object(), Json(nullptr)}}});
  ResponsesRequest r;
  r.model = opt_string(body, "model", "").value_or("");
  if (r.model.size() > 256) invalid("field 'model' is longer than 256 bytes", "model");
  r.instructions = opt_string(body, "instructions", "");
  r.messages = read_input(body);
  if (r.instructions && !r.instructions->empty()) {
    r.messages.insert(
        r.messages.begin(),
        {.role = "system",
         .parts = {{.is_image = false, .value = *r.instructions, .field = "instructions"}}});
  }
  read_generation_params(body, "", r.generation, {"max_output_tokens"});
  r.stream = opt_bool(body, "stream", "").value_or(false);
  // Not kept for previous_response_id; it asks for (or refuses) capture (stages/capture).
  r.store = opt_bool(body, "store", "");
  (void)opt_object(body, "metadata", "");
  // Tools: the function declarations are flat here ({type, name, description, parameters}).
  Json chat_shaped = Json::object();
  if (const auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) invalid("field 'tools' must be an array", "tools");
    if (tools->size() > kMaxTools) invalid("field 'tools' declares too many tools", "tools");
    for (size_t i = 0; i < tools->size(); ++i) {
      const auto& t = (*tools)[i];
      const std::string path = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || opt_string(t, "type", path).value_or("") != "function") {
        invalid("field '" + path + "' must be a function tool ({\"type\": \"function\", ...})",
                path + ".type");
      }
      Json fn = t;
      fn.erase("type");
      r.format.tools.push_back(read_function(fn, path));
    }
  }
  read_tool_choice(body, r.format, true);
  r.format.parallel_tool_calls = opt_bool(body, "parallel_tool_calls", "").value_or(true);
  read_text_format(body, r.format);
  if (r.format.json_schema && !r.format.tools.empty() &&
      r.format.tool_choice != engine::ToolChoice::kNone) {
    invalid("text.format and tools cannot be combined; choose one", "text");
  }
  if (const auto rf = opt_string(body, "reasoning_format", ""); rf && *rf == "none") {
    r.format.reasoning = engine::ReasoningFormat::kInline;
  }
  r.echo = Json::object();
  for (const char* key : {"instructions", "max_output_tokens", "temperature", "top_p", "tools",
                          "tool_choice", "parallel_tool_calls", "text", "metadata"}) {
    if (const auto it = body.find(key); it != body.end()) r.echo[key] = *it;
  }
  return r;
}

}  // namespace mmserve::http
