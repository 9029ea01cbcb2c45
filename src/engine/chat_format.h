// A model's chat format: its Jinja chat template rendered with tools, a JSON schema and
// reasoning switches, the grammar that constrains what the model may write, and the parser that
// reads the written text back into content, reasoning and tool calls.
//
// This is the one place mmserve uses llama.cpp's `common` library (chat.h,
// json-schema-to-grammar.h: what llama-server uses), so the model families' native tool-call
// and reasoning formats (Qwen's <tool_call>, Mistral's [TOOL_CALLS]/[THINK], gpt-oss's
// channels, Llama 3's JSON, Hermes, DeepSeek, ...) follow llama-server's behaviour exactly and
// a template without a dedicated handler gets the generic JSON format. No llama.cpp type leaves
// this header.
//
// Ownership and threading: ChatTemplates belongs to its TextModel and is immutable after
// construction; apply() is thread-safe. A ChatOutputParser is immutable and thread-safe; a
// ChatStreamParser is per response, one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct llama_model;
struct common_chat_templates;
struct common_chat_parser_params;

namespace mmserve::engine {

using Token = int32_t;

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object, as text
  bool operator==(const ToolCall&) const = default;
};

// One message of a conversation. `content` holds the text (images already replaced by the
// projector's markers); the other fields are those of OpenAI's assistant and tool messages.
struct ChatMessage {
  std::string role;  // system, user, assistant or tool
  std::string content;
  std::string reasoning_content;  // an assistant's earlier reasoning, when the client sends it
  std::vector<ToolCall> tool_calls;
  std::string tool_call_id;  // role tool: the call it answers
  std::string name;          // role tool: the function's name
};

struct ToolSpec {
  std::string name;
  std::string description;
  std::string parameters;  // a JSON schema, as text ("{}" when the function takes none)
};

enum class ToolChoice { kAuto, kNone, kRequired };

// How the answer's reasoning is returned: separated into reasoning_content (llama-server's and
// vLLM's default for reasoning models), or left in the content as the model wrote it.
enum class ReasoningFormat { kSeparate, kInline };

struct ChatFormatRequest {
  std::vector<ChatMessage> messages;
  std::vector<ToolSpec> tools;  // a named tool_choice keeps only that one (and sets kRequired)
  ToolChoice tool_choice = ToolChoice::kAuto;
  bool parallel_tool_calls = false;
  std::optional<std::string> json_schema;  // the answer must be JSON valid against it
  ReasoningFormat reasoning = ReasoningFormat::kSeparate;
  bool enable_thinking = true;  // the template's switch, for models that have one
};

// Constrained sampling: a GBNF grammar (rooted at "root"), active from the first token, or
// (lazy) from the moment a trigger appears, so that free text may precede a tool call.
struct GrammarConstraint {
  std::string gbnf;  // empty: unconstrained
  bool lazy = false;
  std::vector<std::string> trigger_patterns;  // regexes on the generated text
  std::vector<Token> trigger_tokens;
  // The tokens the template already wrote at the start of the answer: the grammar, which
  // describes the whole answer, is advanced over them before sampling (as llama-server does).
  std::vector<Token> prefill;
  bool empty() const { return gbnf.empty(); }
};

class ChatOutputParser;

// What a chat request becomes on this model.
struct ChatPrompt {
  std::string text;  // the rendered prompt (special tokens written out: tokenize parsing them)
  GrammarConstraint grammar;
  std::vector<std::string> stops;       // stop strings the format adds
  std::vector<Token> preserved_tokens;  // special tokens the parser must see in the output text
  std::shared_ptr<const ChatOutputParser> parser;  // reads the answer back
};

// The answer, read back.
struct ParsedMessage {
  std::string content;
  std::string reasoning_content;
  std::vector<ToolCall> tool_calls;
};

// One increment of a streamed answer (OpenAI's chat delta): text added to the reasoning or the
// content, or to tool call `tool_index` (its id and name come with its first increment).
struct ChatDelta {
  std::string reasoning_content;
  std::string content;
  std::optional<size_t> tool_index;
  ToolCall tool_call;  // only the parts added by this increment
};

class ChatOutputParser {
 public:
  ~ChatOutputParser();
  // The whole answer. Text the format cannot read as a tool call stays content.
  ParsedMessage parse(const std::string& text) const;
  // Whether answers can hold tool calls (the request had tools and tool_choice was not none).
  bool parses_tools() const { return parses_tools_; }

 private:
  friend class ChatTemplates;
  friend class ChatStreamParser;
  ChatOutputParser() = default;
  ParsedMessage parse_impl(const std::string& text, bool partial) const;
  std::unique_ptr<common_chat_parser_params> params_;
  bool parses_tools_ = false;
  // The generic JSON format (a template without tool support): the answer is one JSON object,
  // {"tool_calls": [{"name", "arguments"}]} or {"response": "..."}, read once it is complete.
  bool generic_ = false;
};

// A streamed answer read as it grows: push() takes the text generated since the last call and
// returns the increments it completes; finish() reads the end of the answer. Tool call ids are
// stable across increments and equal to those finish() reports.
class ChatStreamParser {
 public:
  explicit ChatStreamParser(std::shared_ptr<const ChatOutputParser> parser);
  std::vector<ChatDelta> push(std::string_view text);
  std::vector<ChatDelta> finish();
  const ParsedMessage& message() const { return message_; }

 private:
  std::vector<ChatDelta> advance(bool partial);
  std::shared_ptr<const ChatOutputParser> parser_;
  std::string text_;
  ParsedMessage message_;
  std::vector<std::string> ids_;
};

class ChatTemplates {
 public:
  // The model's own template; ChatML when it has none or when its template does not parse
  // (`fallback_reason` then says why, for the load log).
  ChatTemplates(const llama_model* model, std::string& fallback_reason);
  ~ChatTemplates();
  ChatTemplates(const ChatTemplates&) = delete;
  ChatTemplates& operator=(const ChatTemplates&) = delete;

  // Renders `request` and builds its grammar and parser. Throws Error(kInvalidInput) naming
  // "messages", "tools" or "response_format" when the template or the schema refuses them.
  ChatPrompt apply(const ChatFormatRequest& request) const;
  // Whether the template renders tool calls itself; others get the generic JSON format.
  bool supports_tools() const;

 private:
  const llama_model* model_;
  std::unique_ptr<common_chat_templates, void (*)(common_chat_templates*)> templates_;
};

// The GBNF grammar of `json_schema` (a JSON schema as text), for answers constrained without a
// chat template. Throws Error(kInvalidInput, `field`) when it is not a schema it can compile.
std::string json_schema_grammar(const std::string& json_schema, const std::string& field);

}  // namespace mmserve::engine
