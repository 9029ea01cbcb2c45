#include "http/answer_format_request.h"

#include <algorithm>

#include "core/error.h"

namespace mmserve::http {
namespace {

[[noreturn]] void invalid(const std::string& message, const std::string& field) {
  throw Error(ErrorCode::kInvalidInput, message, field);
}

bool valid_function_name(const std::string& name) {
  // OpenAI's rule: a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::vector<engine::ToolSpec> read_tools(const Json& body, bool responses_api) {
  const auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_array()) invalid("field 'tools' must be an array", "tools");
  if (it->size() > kMaxTools) {
    invalid("field 'tools' declares more than " + std::to_string(kMaxTools) + " tools", "tools");
  }
  std::vector<engine::ToolSpec> tools;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& tool = (*it)[i];
    const std::string path = "tools[" + std::to_string(i) + "]";
    if (!tool.is_object()) invalid("field '" + path + "' must be an object", path);
    const auto type = opt_string(tool, "type", path).value_or("");
    if (type != "function") {
      invalid("tool type '" + type + "' is not supported; only 'function' tools are",
              path + ".type");
    }
    if (responses_api) {
      reject_unsupported_fields(tool, path,
                                {"type", "name", "description", "parameters", "strict"});
      tools.push_back(read_function(tool, path));
    } else {
      reject_unsupported_fields(tool, path, {"type", "function"});
      const Json* fn = opt_object(tool, "function", path);
      if (fn == nullptr) invalid("field '" + path + ".function' is required", path + ".function");
      tools.push_back(read_function(*fn, path + ".function"));
    }
    for (size_t j = 0; j + 1 < tools.size(); ++j) {
      if (tools[j].name == tools.back().name) {
        invalid("tool '" + tools.back().name + "' is declared twice", path);
      }
    }
  }
  return tools;
}

engine::ReasoningFormat read_reasoning_format(const Json& body) {
  const auto value = opt_string(body, "reasoning_format", "");
  if (!value || *value == "auto" || *value == "deepseek") return engine::ReasoningFormat::kSeparate;
  if (*value == "none") return engine::ReasoningFormat::kInline;
  invalid("field 'reasoning_format' must be \"auto\", \"deepseek\" or \"none\"",
          "reasoning_format");
}

}  // namespace

std::string read_schema(const Json& schema, const std::string& path) {
  if (!schema.is_object() && !schema.is_boolean()) {
    invalid("field '" + path + "' must be a JSON schema (an object)", path);
  }
  std::string text = schema.dump();
  if (text.size() > kMaxSchemaBytes) {
    invalid("field '" + path + "' is longer than " + std::to_string(kMaxSchemaBytes) + " bytes",
            path);
  }
  return text;
}

engine::ToolSpec read_function(const Json& fn, const std::string& path) {
  reject_unsupported_fields(fn, path, {"name", "description", "parameters", "strict"});
  engine::ToolSpec spec;
  spec.name = opt_string(fn, "name", path).value_or("");
  if (!valid_function_name(spec.name)) {
    invalid("field '" + path + ".name' must be 1 to 64 letters, digits, underscores or dashes",
            path + ".name");
  }
  spec.description = opt_string(fn, "description", path).value_or("");
  (void)opt_bool(fn, "strict", path);  // constrained either way: the grammar is always strict
  const auto params = fn.find("parameters");
  spec.parameters = params == fn.end() || params->is_null()
                        ? std::string("{\"type\":\"object\",\"properties\":{}}")
                        : read_schema(*params, path + ".parameters");
  return spec;
}

void read_tool_choice(const Json& body, pipeline::AnswerFormat& format, bool responses_api) {
  const auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return;
  if (it->is_string()) {
    const auto choice = it->get<std::string>();
    if (choice == "auto") {
      format.tool_choice = engine::ToolChoice::kAuto;
    } else if (choice == "none") {
      format.tool_choice = engine::ToolChoice::kNone;
    } else if (choice == "required") {
      format.tool_choice = engine::ToolChoice::kRequired;
    } else {
      invalid("field 'tool_choice' must be \"auto\", \"none\", \"required\" or a function",
              "tool_choice");
    }
  } else if (it->is_object()) {
    if (opt_string(*it, "type", "tool_choice").value_or("") != "function") {
      invalid("field 'tool_choice.type' must be \"function\"", "tool_choice.type");
    }
    std::string name;
    std::string name_field;
    if (responses_api) {
      reject_unsupported_fields(*it, "tool_choice", {"type", "name"});
      name = opt_string(*it, "name", "tool_choice").value_or("");
      name_field = "tool_choice.name";
    } else {
      reject_unsupported_fields(*it, "tool_choice", {"type", "function"});
      const Json* fn = opt_object(*it, "function", "tool_choice");
      if (fn == nullptr)
        invalid("field 'tool_choice.function' is required", "tool_choice.function");
      reject_unsupported_fields(*fn, "tool_choice.function", {"name"});
      name = opt_string(*fn, "name", "tool_choice.function").value_or("");
      name_field = "tool_choice.function.name";
    }
    const auto tool = std::find_if(format.tools.begin(), format.tools.end(),
                                   [&](const engine::ToolSpec& t) { return t.name == name; });
    if (tool == format.tools.end()) {
      invalid("tool_choice names function '" + name + "', which 'tools' does not declare",
              name_field);
    }
    format.tools = {*tool};
    format.tool_choice = engine::ToolChoice::kRequired;
  } else {
    invalid("field 'tool_choice' must be a string or an object", "tool_choice");
  }
  if (format.tool_choice == engine::ToolChoice::kRequired && format.tools.empty()) {
    invalid("tool_choice requires a tool call but 'tools' declares none", "tool_choice");
  }
}

pipeline::AnswerFormat read_chat_answer_format(const Json& body) {
  pipeline::AnswerFormat format;
  format.tools = read_tools(body, false);
  read_tool_choice(body, format, false);
  format.parallel_tool_calls =
      opt_bool(body, "parallel_tool_calls", "").value_or(true);  // OpenAI's
  if (const Json* rf = opt_object(body, "response_format", "")) {
    const auto type = opt_string(*rf, "type", "response_format").value_or("");
    if (type == "text") {
      reject_unsupported_fields(*rf, "response_format", {"type"});
    } else if (type == "json_object") {
      reject_unsupported_fields(*rf, "response_format", {"type"});
      format.json_schema = "{\"type\":\"object\"}";
    } else if (type == "json_schema") {
      reject_unsupported_fields(*rf, "response_format", {"type", "json_schema"});
      const Json* js = opt_object(*rf, "json_schema", "response_format");
      if (js == nullptr) {
        invalid("field 'response_format.json_schema' is required", "response_format.json_schema");
      }
      reject_unsupported_fields(*js, "response_format.json_schema",
                                {"name", "schema", "strict", "description"});
      (void)opt_string(*js, "name", "response_format.json_schema");
      (void)opt_bool(*js, "strict", "response_format.json_schema");
      const auto schema = js->find("schema");
      format.json_schema = schema == js->end()
                               ? std::string("{}")
                               : read_schema(*schema, "response_format.json_schema.schema");
      format.schema_field = "response_format.json_schema.schema";
    } else {
      invalid("field 'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"",
              "response_format.type");
    }
  }
  if (format.json_schema && !format.tools.empty() &&
      format.tool_choice != engine::ToolChoice::kNone) {
    invalid("response_format and tools cannot be combined; choose one", "response_format");
  }
  format.reasoning = read_reasoning_format(body);
  if (const Json* kwargs = opt_object(body, "chat_template_kwargs", "")) {
    reject_unsupported_fields(*kwargs, "chat_template_kwargs", {"enable_thinking"});
    format.enable_thinking =
        opt_bool(*kwargs, "enable_thinking", "chat_template_kwargs").value_or(true);
  }
  return format;
}

std::vector<engine::ToolCall> read_tool_calls(const Json& calls, const std::string& path) {
  if (!calls.is_array()) invalid("field '" + path + "' must be an array", path);
  std::vector<engine::ToolCall> out;
  for (size_t i = 0; i < calls.size(); ++i) {
    const auto& c = calls[i];
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!c.is_object()) invalid("field '" + p + "' must be an object", p);
    reject_unsupported_fields(c, p, {"id", "type", "function"});
    if (opt_string(c, "type", p).value_or("function") != "function") {
      invalid("field '" + p + ".type' must be \"function\"", p + ".type");
    }
    const Json* fn = opt_object(c, "function", p);
    if (fn == nullptr) invalid("field '" + p + ".function' is required", p + ".function");
    reject_unsupported_fields(*fn, p + ".function", {"name", "arguments"});
    engine::ToolCall call;
    call.id = opt_string(c, "id", p).value_or("");
    call.name = opt_string(*fn, "name", p + ".function").value_or("");
    if (call.name.empty()) {
      invalid("field '" + p + ".function.name' is required", p + ".function.name");
    }
    call.arguments = opt_string(*fn, "arguments", p + ".function").value_or("{}");
    if (!Json::accept(call.arguments)) {
      invalid("field '" + p + ".function.arguments' must be a JSON text",
              p + ".function.arguments");
    }
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace mmserve::http
