// The training data `mmserve finetune` reads: JSON lines in the formats the fine-tuning tools
// share, or plain text, parsed into conversations (or documents) before any model is involved.
//
//   openai    {"messages": [{"role": "system|user|assistant|tool", "content": "...",
//              "weight": 0|1}, ...]}   (OpenAI's fine-tuning chat format; `mmserve dataset
//              export --format openai` writes it). An assistant turn with weight 0 is dropped
//              from the training text (libllama's trainer has no per-token loss mask), and the
//              turns after the last trained assistant turn are dropped with it; a conversation
//              none of whose assistant turns is trained is skipped (counted). `content` is a
//              string or an array of {"type": "text", "text": ...} parts; tool_calls are
//              not rendered (an assistant turn of only tool calls trains as empty text).
//   sharegpt  {"conversations": [{"from": "system|human|gpt|...", "value": "..."}, ...]}
//   sharegpt  ... "function_call" turns train as the assistant's, "observation" as tool output
//   alpaca    {"instruction": "...", "input": "...", "output": "...", "system": "...",
//              "history": [["earlier instruction", "its answer"], ...]}
//   text      a plain text file (one document), or JSON lines of {"text": "..."} (one document
//             each)
//
// Detection (format kAuto) reads the first non-blank line: not a JSON object -> plain text; else
// by its keys ("messages", "conversations", "instruction", "text"). Every malformed line is an
// Error(kInvalidInput, field "data") whose message names the file and the line number.
//
// Stateless and thread-safe.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <vector>

#include "engine/chat_format.h"

namespace mmserve::engine {

enum class FinetuneFormat { kAuto, kOpenAI, kShareGPT, kAlpaca, kText };

// "openai", "sharegpt", "alpaca", "text", "auto"; Error(kInvalidInput, field "format") otherwise.
FinetuneFormat parse_finetune_format(const std::string& name);
const char* finetune_format_name(FinetuneFormat format);

// One training example: a conversation (messages) or, for the text format, a document (text).
struct FinetuneExample {
  std::vector<ChatMessage> messages;  // role and content only
  std::string text;                   // text format only
  size_t line = 0;                    // where it starts in the file (1-based)
};

struct FinetuneData {
  FinetuneFormat format = FinetuneFormat::kAuto;  // the format read (never kAuto)
  std::vector<FinetuneExample> examples;
  size_t skipped_examples = 0;  // openai: conversations with no trained assistant turn
  size_t dropped_turns = 0;     // openai: assistant turns with weight 0 (and turns after them)
};

// Reads `in` (named `source` in messages). Throws Error(kInvalidInput, field "data") on a
// malformed line (naming it) and when no example remains.
FinetuneData read_finetune_data(std::istream& in, FinetuneFormat format, const std::string& source);
// The same for a file; Error(kNotFound, field "data") when it cannot be opened.
FinetuneData read_finetune_file(const std::string& path, FinetuneFormat format);

// An example as plain text, for a model without a chat template: the document, or the
// messages' contents joined by newlines.
std::string plain_training_text(const FinetuneExample& example);

}  // namespace mmserve::engine
