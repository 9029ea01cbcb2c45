#include "engine/chat_format.h"

// llama.cpp's common library (installed by scripts/deps.sh under include/llama-common).
#include <chat.h>
#include <common.h>
#include <json-schema-to-grammar.h>
#include <llama.h>
#include <log.h>

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"

namespace mmserve::engine {
namespace {

// common logs through its own worker thread to stderr; mmserve reports what matters as typed
// errors instead, so that thread is paused once (its ring buffer keeps the last lines).
void quiet_common_log() {
  static std::once_flag once;
  std::call_once(once, [] { common_log_pause(common_log_main()); });
}

std::string random_call_id() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

common_chat_msg to_common(const ChatMessage& m) {
  common_chat_msg out;
  out.role = m.role;
  out.content = m.content;
  out.reasoning_content = m.reasoning_content;
  out.tool_name = m.name;
  out.tool_call_id = m.tool_call_id;
  for (const auto& call : m.tool_calls) {
    out.tool_calls.push_back({call.name, call.arguments, call.id});
  }
  return out;
}

ParsedMessage from_common(const common_chat_msg& m) {
  ParsedMessage out{
      .content = m.content, .reasoning_content = m.reasoning_content, .tool_calls = {}};
  for (const auto& call : m.tool_calls) {
    out.tool_calls.push_back({call.id, call.name, call.arguments});
  }
  return out;
}

// The token of `text` when it is exactly one, else nullopt.
std::optional<Token> single_token(const llama_vocab* vocab, const std::string& text) {
  const auto ids = common_tokenize(vocab, text, false, true);
  if (ids.size() == 1) return ids[0];
  return std::nullopt;
}

GrammarConstraint grammar_of(const common_chat_params& params, const llama_vocab* vocab,
                             const std::vector<Token>& preserved) {
  GrammarConstraint g;
  g.gbnf = params.grammar;
  g.lazy = params.grammar_lazy;
  if (g.gbnf.empty()) return g;
  for (const auto& trigger : params.grammar_triggers) {
    switch (trigger.type) {
      case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: {
        // A word that is one preserved token triggers on the token, as llama-server does.
        const auto token = single_token(vocab, trigger.value);
        if (token && std::find(preserved.begin(), preserved.end(), *token) != preserved.end()) {
          g.trigger_tokens.push_back(*token);
        } else {
          g.trigger_patterns.push_back(regex_escape(trigger.value));
        }
        break;
      }
      case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: g.trigger_patterns.push_back(trigger.value); break;
      case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
        const auto& p = trigger.value;
        std::string anchored = "^$";
        if (!p.empty()) {
          anchored = (p.front() != '^' ? "^" : "") + p + (p.back() != '$' ? "$" : "");
        }
        g.trigger_patterns.push_back(anchored);
        break;
      }
      case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: g.trigger_tokens.push_back(trigger.token); break;
    }
  }
  if (g.lazy && g.trigger_patterns.empty() && g.trigger_tokens.empty()) {
    throw Error(ErrorCode::kInternal, "the chat format gave a lazy grammar without triggers");
  }
  if (!g.lazy && !params.generation_prompt.empty()) {
    const auto tokens = common_tokenize(vocab, params.generation_prompt, false, true);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string piece = common_token_to_piece(vocab, tokens[i], true);
      // Some tokenizers put a space before a leading special token: not part of the answer.
      if (i == 0 && !piece.empty() && std::isspace(static_cast<unsigned char>(piece[0])) &&
          !std::isspace(static_cast<unsigned char>(params.generation_prompt[0]))) {
        continue;
      }
      g.prefill.push_back(tokens[i]);
    }
  }
  return g;
}

// The generic format's schema: {"tool_calls": [calls]} (at least one when required; at most
// one unless parallel), or, when the model may answer in words, {"response": text}.
std::string generic_schema(const ChatFormatRequest& r) {
  using nlohmann::json;
  json calls = json::array();
  for (const auto& t : r.tools) {
    calls.push_back(
        {{"type", "object"},
         {"properties", {{"name", {{"const", t.name}}}, {"arguments", json::parse(t.parameters)}}},
         {"required", {"name", "arguments"}}});
  }
  json list = {{"type", "array"}, {"items", {{"anyOf", calls}}}, {"minItems", 1}};
  if (!r.parallel_tool_calls) list["maxItems"] = 1;
  json with_calls = {
      {"type", "object"}, {"properties", {{"tool_calls", list}}}, {"required", {"tool_calls"}}};
  if (r.tool_choice == ToolChoice::kRequired) return with_calls.dump();
  json answer = {{"type", "object"},
                 {"properties", {{"response", {{"type", "string"}}}}},
                 {"required", {"response"}}};
  return json{{"anyOf", {with_calls, answer}}}.dump();
}

// The conversation for a template that knows no tools: their description joins the system
// message, earlier calls and results become text in the generic format.
std::vector<ChatMessage> generic_messages(const ChatFormatRequest& r) {
  using nlohmann::json;
  json tools = json::array();
  for (const auto& t : r.tools) {
    tools.push_back({{"name", t.name},
                     {"description", t.description},
                     {"parameters", json::parse(t.parameters)}});
  }
  std::string guide =
      "You can call these functions:\n" + tools.dump(2) +
      "\nAnswer with one JSON object: {\"tool_calls\": [{\"name\": ..., \"arguments\": {...}}]} "
      "to call functions";
  guide += r.tool_choice == ToolChoice::kRequired ? "." : ", or {\"response\": \"...\"} to reply.";
  std::vector<ChatMessage> out;
  if (!r.messages.empty() && r.messages.front().role == "system") {
    out.push_back(r.messages.front());
    out.back().content += "\n\n" + guide;
  } else {
    out.push_back({.role = "system", .content = guide});
  }
  for (size_t i = out.front().content == guide ? 0 : 1; i < r.messages.size(); ++i) {
    ChatMessage m = r.messages[i];
    if (m.role == "assistant" && !m.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& c : m.tool_calls) {
        calls.push_back(
            {{"name", c.name}, {"arguments", json::parse(c.arguments, nullptr, false)}});
      }
      m.content = json{{"tool_calls", calls}}.dump();
      m.tool_calls.clear();
    } else if (m.role == "tool") {
      m.role = "user";
      m.content =
          json{{"tool_result", {{"id", m.tool_call_id}, {"name", m.name}, {"content", m.content}}}}
              .dump();
    }
    out.push_back(std::move(m));
  }
  return out;
}

// The JSON object of a generic answer: the grammar (common's for a schema) lets it come in a
// ```json fence.
std::string_view unfenced(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  if (text.starts_with("```json") && text.ends_with("```") && text.size() >= 10) {
    text = trim(text.substr(7, text.size() - 10));
  }
  return text;
}

ParsedMessage parse_generic(const std::string& text) {
  using nlohmann::json;
  const json doc = json::parse(unfenced(text), nullptr, false);
  ParsedMessage out;
  if (doc.is_object() && doc.contains("tool_calls") && doc["tool_calls"].is_array()) {
    for (const auto& c : doc["tool_calls"]) {
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) continue;
      out.tool_calls.push_back({.id = {},
                                .name = c["name"].get<std::string>(),
                                .arguments = c.value("arguments", json::object()).dump()});
    }
    return out;
  }
  if (doc.is_object() && doc.contains("response") && doc["response"].is_string()) {
    out.content = doc["response"].get<std::string>();
    return out;
  }
  out.content = text;
  return out;
}

}  // namespace

ChatOutputParser::~ChatOutputParser() = default;

ParsedMessage ChatOutputParser::parse_impl(const std::string& text, bool partial) const {
  if (generic_) {
    if (partial) return {};  // one JSON object: read when complete
    return parse_generic(text);
  }
  try {
    return from_common(common_chat_parse(text, partial, *params_));
  } catch (const std::exception&) {
    // A finished answer the format cannot read (a random or cut-off model) is plain content;
    // a growing one waits for more text.
    if (partial) throw;
    return {.content = text, .reasoning_content = {}, .tool_calls = {}};
  }
}

ParsedMessage ChatOutputParser::parse(const std::string& text) const {
  ParsedMessage m = parse_impl(text, false);
  for (auto& call : m.tool_calls) {
    if (call.id.empty()) call.id = random_call_id();
  }
  return m;
}

ChatStreamParser::ChatStreamParser(std::shared_ptr<const ChatOutputParser> parser)
    : parser_(std::move(parser)) {}

std::vector<ChatDelta> ChatStreamParser::push(std::string_view text) {
  text_ += text;
  return advance(true);
}

std::vector<ChatDelta> ChatStreamParser::finish() {
  return advance(false);
}

std::vector<ChatDelta> ChatStreamParser::advance(bool partial) {
  ParsedMessage next;
  try {
    next = parser_->parse_impl(text_, partial);
  } catch (const std::exception&) {
    return {};  // not readable yet
  }
  std::vector<ChatDelta> out;
  // Only growth is sent: text a partial parse showed is never taken back (the parser holds
  // back what could still turn into markup), so a shrink is a revision to ignore.
  auto grown = [](const std::string& before, const std::string& after) -> std::string {
    if (after.size() > before.size() && after.compare(0, before.size(), before) == 0) {
      return after.substr(before.size());
    }
    return {};
  };
  if (auto r = grown(message_.reasoning_content, next.reasoning_content); !r.empty()) {
    out.push_back({.reasoning_content = r, .content = {}, .tool_index = {}, .tool_call = {}});
    message_.reasoning_content += r;
  }
  if (auto c = grown(message_.content, next.content); !c.empty()) {
    out.push_back({.reasoning_content = {}, .content = c, .tool_index = {}, .tool_call = {}});
    message_.content += c;
  }
  for (size_t i = 0; i < next.tool_calls.size(); ++i) {
    const auto& call = next.tool_calls[i];
    if (i >= message_.tool_calls.size()) {
      if (call.name.empty()) break;  // a call is announced once its name is known
      if (ids_.size() <= i) ids_.push_back(call.id.empty() ? random_call_id() : call.id);
      message_.tool_calls.push_back(
          {.id = ids_[i], .name = call.name, .arguments = call.arguments});
      out.push_back({.reasoning_content = {},
                     .content = {},
                     .tool_index = i,
                     .tool_call = message_.tool_calls[i]});
      continue;
    }
    if (auto a = grown(message_.tool_calls[i].arguments, call.arguments); !a.empty()) {
      message_.tool_calls[i].arguments += a;
      out.push_back({.reasoning_content = {},
                     .content = {},
                     .tool_index = i,
                     .tool_call = {.id = {}, .name = {}, .arguments = a}});
    }
  }
  return out;
}

ChatTemplates::ChatTemplates(const llama_model* model, std::string& fallback_reason)
    : model_(model), templates_(nullptr, common_chat_templates_free) {
  quiet_common_log();
  try {
    templates_.reset(common_chat_templates_init(model, "").release());
  } catch (const std::exception& e) {
    fallback_reason =
        std::string("its chat template does not parse (") + e.what() + "); using ChatML instead";
    templates_.reset(common_chat_templates_init(model, "chatml").release());
  }
}

ChatTemplates::~ChatTemplates() = default;

bool ChatTemplates::supports_tools() const {
  const auto caps = common_chat_templates_get_caps(templates_.get());
  const auto it = caps.find("supports_tool_calls");
  return it != caps.end() && it->second;
}

ChatPrompt ChatTemplates::apply(const ChatFormatRequest& request) const {
  if (!request.tools.empty() && request.tool_choice != ToolChoice::kNone && !supports_tools()) {
    ChatFormatRequest generic = request;
    generic.messages = generic_messages(request);
    generic.tools.clear();
    generic.json_schema = generic_schema(request);
    ChatPrompt out = apply(generic);
    std::shared_ptr<ChatOutputParser> parser(new ChatOutputParser());
    parser->params_ = std::make_unique<common_chat_parser_params>();
    parser->parses_tools_ = true;
    parser->generic_ = true;
    out.parser = std::move(parser);
    return out;
  }
  common_chat_templates_inputs inputs;
  inputs.use_jinja = true;
  inputs.add_generation_prompt = true;
  for (const auto& m : request.messages) inputs.messages.push_back(to_common(m));
  for (const auto& t : request.tools) {
    inputs.tools.push_back({t.name, t.description, t.parameters});
  }
  switch (request.tool_choice) {
    case ToolChoice::kAuto: inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_AUTO; break;
    case ToolChoice::kNone: inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_NONE; break;
    case ToolChoice::kRequired: inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED; break;
  }
  inputs.parallel_tool_calls = request.parallel_tool_calls;
  if (request.json_schema) {
    // Compiled once alone first, so that a schema it cannot take is named as such.
    (void)json_schema_grammar(*request.json_schema, "response_format");
    inputs.json_schema = *request.json_schema;
  }
  inputs.reasoning_format = request.reasoning == ReasoningFormat::kSeparate
                                ? COMMON_REASONING_FORMAT_DEEPSEEK
                                : COMMON_REASONING_FORMAT_NONE;
  inputs.enable_thinking = request.enable_thinking;

  common_chat_params params;
  try {
    params = common_chat_templates_apply(templates_.get(), inputs);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInvalidInput,
                std::string("the model's chat template refused the conversation: ") + e.what(),
                request.tools.empty() ? "messages" : "tools");
  }
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  ChatPrompt out;
  out.text = std::move(params.prompt);
  for (const auto& t : params.preserved_tokens) {
    if (const auto token = single_token(vocab, t)) out.preserved_tokens.push_back(*token);
  }
  out.grammar = grammar_of(params, vocab, out.preserved_tokens);
  out.stops = params.additional_stops;

  std::shared_ptr<ChatOutputParser> parser(new ChatOutputParser());
  parser->params_ = std::make_unique<common_chat_parser_params>(params);
  parser->params_->reasoning_format = inputs.reasoning_format;
  parser->parses_tools_ = !request.tools.empty() && request.tool_choice != ToolChoice::kNone;
  parser->params_->parse_tool_calls = parser->parses_tools_;
  if (!params.parser.empty()) parser->params_->parser.load(params.parser);
  out.parser = std::move(parser);
  return out;
}

std::string json_schema_grammar(const std::string& json_schema, const std::string& field) {
  try {
    return ::json_schema_to_grammar(common_json::parse(json_schema));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + field + "' holds a JSON schema that cannot be compiled: " + e.what(),
                field);
  }
}

}  // namespace mmserve::engine
