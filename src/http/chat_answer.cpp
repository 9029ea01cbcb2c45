#include "http/chat_answer.h"

#include <chrono>

#include "core/utf8.h"
#include "http/request_log.h"
#include "http/routes.h"

namespace mmserve::http {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Json openai_usage_json(const engine::SequenceResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_prompt_tokens}}}};
}

void fill_chat_call(pipeline::Call& call, std::string model,
                    std::vector<pipeline::Message> messages, pipeline::AnswerFormat format,
                    engine::GenerationRequest generation) {
  call.model = std::move(model);
  call.text.style = pipeline::PromptStyle::kChat;
  call.text.messages = std::move(messages);
  call.text.format = std::move(format);
  call.generation = std::move(generation);
}

pipeline::Submission submit_text_call(const Services& services, Exchange& ex, bool stream,
                                      const char* id_prefix, std::string& id) {
  ex.call.task = runtime::Task::kTextGen;
  ex.call.stream = stream;
  pipeline::Submission s = submit_call(services, ex);
  id = new_request_id(id_prefix);
  note_submission(ex, s, id, stream);
  return s;
}

engine::ParsedMessage read_answer(const pipeline::Submission& submission, const std::string& text) {
  if (submission.parser) return submission.parser->parse(text);
  return {.content = text, .reasoning_content = {}, .tool_calls = {}};
}

namespace {

Json tool_call_json(const engine::ToolCall& call) {
  return {{"id", call.id},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", sanitize_utf8(call.arguments)}}}};
}

}  // namespace

Json chat_message_json(const engine::ParsedMessage& m) {
  Json out = {{"role", "assistant"}};
  out["content"] = m.content.empty() && !m.tool_calls.empty() ? Json(nullptr) : Json(m.content);
  if (!m.reasoning_content.empty()) out["reasoning_content"] = m.reasoning_content;
  if (!m.tool_calls.empty()) {
    Json calls = Json::array();
    for (const auto& c : m.tool_calls) calls.push_back(tool_call_json(c));
    out["tool_calls"] = std::move(calls);
  }
  return out;
}

const char* chat_finish_reason(const engine::SequenceResult& result,
                               const engine::ParsedMessage& message) {
  // A cut answer is "length" even when it began a call: the call may be incomplete.
  if (result.reason == engine::FinishReason::kLength) return "length";
  return message.tool_calls.empty() ? "stop" : "tool_calls";
}

Json chat_delta_json(const engine::ChatDelta& d) {
  if (d.tool_index) {
    Json call = {{"index", *d.tool_index}};
    Json fn = {{"arguments", sanitize_utf8(d.tool_call.arguments)}};
    if (!d.tool_call.id.empty()) {
      call["id"] = d.tool_call.id;
      call["type"] = "function";
      fn["name"] = d.tool_call.name;
    }
    call["function"] = std::move(fn);
    return {{"tool_calls", Json::array({call})}};
  }
  if (!d.reasoning_content.empty()) return {{"reasoning_content", d.reasoning_content}};
  return {{"content", d.content}};
}

ChatDeltaStream::ChatDeltaStream(std::shared_ptr<const engine::ChatOutputParser> parser) {
  if (parser) parser_ = std::make_unique<engine::ChatStreamParser>(std::move(parser));
}

std::vector<engine::ChatDelta> ChatDeltaStream::push(std::string_view text) {
  if (parser_) return parser_->push(text);
  plain_.content += text;
  return {
      {.reasoning_content = {}, .content = std::string(text), .tool_index = {}, .tool_call = {}}};
}

std::vector<engine::ChatDelta> ChatDeltaStream::finish() {
  if (parser_) return parser_->finish();
  return {};
}

const engine::ParsedMessage& ChatDeltaStream::message() const {
  return parser_ ? parser_->message() : plain_;
}

}  // namespace mmserve::http
