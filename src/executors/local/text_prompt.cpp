#include "executors/local/text_prompt.h"

#include <algorithm>

namespace mmserve::executors {

std::string prompt_text(const engine::TextModel& model, const pipeline::TextInput& input,
                        const std::vector<engine::ChatMessage>& messages) {
  switch (input.style) {
    case pipeline::PromptStyle::kChat: return model.apply_chat_template(messages, "chatml");
    case pipeline::PromptStyle::kInstruct:
      if (model.has_chat_template()) {
        std::vector<engine::ChatMessage> turn;
        if (input.system) {
          turn.push_back({"system", *input.system});
        }
        turn.push_back({"user", input.prompt});
        return model.apply_chat_template(turn);
      }
      return input.prompt;
    case pipeline::PromptStyle::kRaw: return input.prompt;
  }
  return input.prompt;
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
