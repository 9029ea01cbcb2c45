#include "executors/local/text_prompt.h"

#include <algorithm>

#include "core/error.h"

namespace mmserve::executors {

namespace {

engine::ChatPrompt through_template(const engine::TextModel& model,
                                    const pipeline::TextInput& input,
                                    std::vector<engine::ChatMessage> messages) {
  const auto& f = input.format;
  engine::ChatFormatRequest request{.messages = std::move(messages),
                                    .tools = f.tools,
                                    .tool_choice = f.tool_choice,
                                    .parallel_tool_calls = f.parallel_tool_calls,
                                    .json_schema = f.json_schema,
                                    .reasoning = f.reasoning,
                                    .enable_thinking = f.enable_thinking};
  if (request.json_schema) {
    // Named by the endpoint's own field when the schema cannot be compiled.
    (void)engine::json_schema_grammar(*request.json_schema, f.schema_field);
  }
  return model.chat_templates().apply(request);
}

}  // namespace

engine::ChatPrompt chat_prompt(const engine::TextModel& model, const pipeline::TextInput& input,
                               const std::vector<engine::ChatMessage>& messages) {
  const bool templated =
      input.style == pipeline::PromptStyle::kChat ||
      (input.style == pipeline::PromptStyle::kInstruct && model.has_chat_template());
  if (templated) {
    if (input.style == pipeline::PromptStyle::kChat)
      return through_template(model, input, messages);
    std::vector<engine::ChatMessage> turn;
    if (input.system) turn.push_back({.role = "system", .content = *input.system});
    turn.push_back({.role = "user", .content = input.prompt});
    // /v1/inference answers the text as written: with a schema that is the JSON alone (no
    // reasoning, no code fence the chat format would allow and strip), so the template renders
    // the turn and the schema's own grammar constrains the answer.
    pipeline::TextInput plain = input;
    plain.format.json_schema.reset();
    engine::ChatPrompt out = through_template(model, plain, std::move(turn));
    if (input.format.json_schema) {
      out.grammar = {};
      out.grammar.gbnf =
          engine::json_schema_grammar(*input.format.json_schema, input.format.schema_field);
      out.parser = nullptr;
    }
    return out;
  }
  if (input.system) {
    // Never dropped without a word: without a template there is no turn to put it in.
    throw Error(ErrorCode::kInvalidInput,
                input.style == pipeline::PromptStyle::kRaw
                    ? "system is not used by a raw prompt; put it in the input"
                    : "model " + model.id() +
                          " has no chat template, so it has no system turn; put it in the input",
                "system");
  }
  engine::ChatPrompt out;
  out.text = input.prompt;
  if (input.format.json_schema) {
    out.grammar.gbnf =
        engine::json_schema_grammar(*input.format.json_schema, input.format.schema_field);
  }
  return out;
}

std::string prompt_text(const engine::TextModel& model, const pipeline::TextInput& input,
                        const std::vector<engine::ChatMessage>& messages) {
  return chat_prompt(model, input, messages).text;
}

bool parses_special_tokens(const engine::TextModel& model, const pipeline::TextInput& input) {
  return input.style == pipeline::PromptStyle::kChat ||
         (input.style == pipeline::PromptStyle::kInstruct && model.has_chat_template());
}

int32_t default_max_tokens(const pipeline::TextInput& input, int32_t sequence_capacity,
                           size_t prompt_tokens) {
  if (!input.default_max_tokens) {
    return 0;
  }
  const auto room = sequence_capacity - static_cast<int32_t>(prompt_tokens);
  return std::max(1, std::min(*input.default_max_tokens, room));
}

}  // namespace mmserve::executors
