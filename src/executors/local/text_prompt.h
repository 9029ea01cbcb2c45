// How a text call becomes a prompt on a local model: the rules of pipeline::PromptStyle, in
// the one place the server and the Python SDK share.
//   kInstruct: a model with a chat template gets the text as one user turn (after the system
//              message, when given), as Ollama's and llama-server's users expect; one without
//              gets it as is.
//   kRaw:      the text as is (a plain completion).
//   kChat:     the messages through the model's chat template; ChatML when it has none (as
//              llama-server does).
// Pure and thread-safe (TextModel's tokenizer and templates are).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/text_model.h"
#include "pipeline/call.h"

namespace mmserve::executors {

// The prompt of `input` (kInstruct, kRaw) or of `messages` (kChat, text already joined with the
// image markers in place of images), with what input.format asks: through the model's chat
// format when a template is used (grammar, stops, preserved tokens and the answer's parser);
// a raw prompt with a schema gets the schema's grammar and no parser.
engine::ChatPrompt chat_prompt(const engine::TextModel& model, const pipeline::TextInput& input,
                               const std::vector<engine::ChatMessage>& messages);

// Just its text (callers without tools or schemas).
std::string prompt_text(const engine::TextModel& model, const pipeline::TextInput& input,
                        const std::vector<engine::ChatMessage>& messages);

// Whether special tokens written in the prompt text are parsed: only in text a template made.
bool parses_special_tokens(const engine::TextModel& model, const pipeline::TextInput& input);

// max_tokens for a request that gave none (0): `default_max_tokens` when the input has one,
// cut to what is left of the sequence after the prompt (at least 1); 0 otherwise, which the
// scheduler reads as "what is left of the context" (TextScheduler::default_max_tokens).
int32_t default_max_tokens(const pipeline::TextInput& input, int32_t sequence_capacity,
                           size_t prompt_tokens);

}  // namespace mmserve::executors
