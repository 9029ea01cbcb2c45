// The fields that shape an answer, read and validated from a request body: OpenAI's `tools`,
// `tool_choice`, `parallel_tool_calls` and `response_format` on chat completions (and their
// Responses-API forms), llama-server's `reasoning_format` and
// `chat_template_kwargs.enable_thinking`, and the tool calls of assistant messages. Every
// failure is Error(kInvalidInput) naming the field by its full path. Pure and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "http/json_fields.h"
#include "pipeline/call.h"

namespace mmserve::http {

// Most tools one request may declare, and the longest schema text (tools' and the answer's).
inline constexpr size_t kMaxTools = 128;
inline constexpr size_t kMaxSchemaBytes = 64 * 1024;

// The chat-completions fields: tools ([{type: function, function: {name, description,
// parameters, strict}}]), tool_choice ("auto", "none", "required" or {type: function,
// function: {name}}), parallel_tool_calls, response_format ({type: text | json_object |
// json_schema, json_schema: {name, schema, strict, description}}), reasoning_format ("none",
// "auto", "deepseek"), chat_template_kwargs ({enable_thinking}).
pipeline::AnswerFormat read_chat_answer_format(const Json& body);

// One function declaration: `fn` holds name, description, parameters and strict (the chat
// API's "function" object, or a Responses-API tool, which has them flat).
engine::ToolSpec read_function(const Json& fn, const std::string& path);

// tool_choice, either API's form; a named function keeps only that tool (erroring when it is
// not declared) and requires it.
void read_tool_choice(const Json& body, pipeline::AnswerFormat& format, bool responses_api);

// A JSON schema given as an object under `path`: checked, and returned as text.
std::string read_schema(const Json& schema, const std::string& path);

// An assistant message's tool_calls: [{id, type: function, function: {name, arguments}}].
std::vector<engine::ToolCall> read_tool_calls(const Json& calls, const std::string& path);

}  // namespace mmserve::http
