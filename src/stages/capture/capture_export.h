// The capture store's records as training data (`mmserve dataset export`), one JSON object per
// line, each format as the trainers read it:
//   openai      OpenAI's fine-tuning chat format: {"messages": [...], "tools"?: [...]}; the
//               captured answer is the last assistant turn, with "weight" 1, or 0 when it was
//               rated down; a corrected answer is replaced by its correction (weight 1); earlier
//               assistant turns (the conversation sent) have weight 0; tool calls keep OpenAI's
//               shape.
//   sharegpt    {"conversations": [{"from": "system"|"human"|"gpt"|"function_call"|
//               "observation", "value"}]} (LLaMA-Factory, Axolotl); down-rated answers without a
//               correction are skipped.
//   alpaca      {"instruction", "input", "output", "system"?, "history"?: [[user, assistant]]};
//               the last user turn is the instruction; answers that are tool calls and
//               down-rated answers are skipped.
//   preference  OpenAI's DPO format: {"input": {"messages"}, "preferred_output": [{"role":
//               "assistant", "content"}], "non_preferred_output": [...]}: a correction over the
//               answer it corrects, and an up-rated answer over a down-rated one of the same
//               conversation; records in no pair are skipped.
// The texts are as stored: already redacted.
//
// Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "store/capture_store.h"

namespace mmserve::stages {

enum class ExportFormat { kOpenAi, kShareGpt, kAlpaca, kPreference };
// "openai", "sharegpt", "alpaca", "preference"; else Error(kInvalidInput) naming `field`.
ExportFormat parse_export_format(const std::string& text, const std::string& field);

struct ExportReport {
  int64_t records = 0;                        // captures read
  int64_t lines = 0;                          // lines written
  int64_t used = 0;                           // captures in at least one line
  std::map<std::string, int64_t> skipped;     // reason -> captures
  std::map<std::string, int64_t> redactions;  // finding type -> placeholders, in what was used
  int64_t prompt_tokens = 0;                  // of the captures used
  int64_t completion_tokens = 0;
};

// Writes the lines of `entries` (oldest first) to `out`.
ExportReport export_dataset(const std::vector<store::CaptureEntry>& entries, ExportFormat format,
                            std::ostream& out);
// The report, several lines for stderr.
std::string report_text(const ExportReport& report);

}  // namespace mmserve::stages
