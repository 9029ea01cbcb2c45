// The assistant's answer in OpenAI's chat shapes: the generated text read back by the model's
// chat format (content, reasoning_content, tool_calls), the streamed deltas of the same, and the
// finish reason. Shared by /v1/chat/completions and /v1/responses. Pure and thread-safe, except
// ChatDeltaStream (one per stream, one thread at a time).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/chat_format.h"
#include "http/exchange.h"
#include "http/json_fields.h"
#include "pipeline/executor.h"
#include "scheduler/generation.h"

namespace mmserve::http {

struct Services;

// Seconds since the epoch ("created").
int64_t unix_now();

// {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"}.
Json openai_usage_json(const engine::SequenceResult& result);

// Makes `call` a chat call (kChat) of `model` over `messages`, shaped by `format`.
void fill_chat_call(pipeline::Call& call, std::string model,
                    std::vector<pipeline::Message> messages, pipeline::AnswerFormat format,
                    engine::GenerationRequest generation);

// Runs a text call of an OpenAI route; `id` gets a fresh response id with `id_prefix`.
pipeline::Submission submit_text_call(const Services& services, Exchange& exchange, bool stream,
                                      const char* id_prefix, std::string& id);

// The generated text read back: by the submission's parser when it has one, else as content.
engine::ParsedMessage read_answer(const pipeline::Submission& submission, const std::string& text);

// {"role": "assistant", "content": ..., "reasoning_content"?: ..., "tool_calls"?: [...]};
// content is null when the answer is only tool calls, as OpenAI sends it.
Json chat_message_json(const engine::ParsedMessage& message);

// "tool_calls" when the answer calls a function, "length" when it was cut, else "stop".
const char* chat_finish_reason(const engine::SequenceResult& result,
                               const engine::ParsedMessage& message);

// One chat delta object ({"content": ...}, {"reasoning_content": ...} or {"tool_calls": [...]}).
Json chat_delta_json(const engine::ChatDelta& delta);

// The streamed answer: text pieces in, deltas out. Without a parser every piece is content.
class ChatDeltaStream {
 public:
  explicit ChatDeltaStream(std::shared_ptr<const engine::ChatOutputParser> parser);
  std::vector<engine::ChatDelta> push(std::string_view text);
  // The rest, at the end of the answer; then message() is the whole answer.
  std::vector<engine::ChatDelta> finish();
  const engine::ParsedMessage& message() const;

 private:
  std::unique_ptr<engine::ChatStreamParser> parser_;
  engine::ParsedMessage plain_;  // without a parser
};

}  // namespace mmserve::http
