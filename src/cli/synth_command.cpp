// `mmserve synth KIND`: writes synthetic models of real shapes with random weights, for tests
// and benchmarks where real weights cannot be had. This file only dispatches on KIND.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve synth KIND [options]
  llm        a language model of a real model's shape (Llama 3.2 1B, a small MoE), any type
  vlm        a vision-language model: Gemma 3 language model + its projector (mmproj)
  whisper    a whisper.cpp speech model (Whisper tiny's shape by default)
  embed      a BERT embedding model (WordPiece vocabulary, mean or CLS pooling)
  lora       a LoRA adapter (random A and B) for a given base model, for adapter tests

`mmserve synth KIND --help` describes each kind's options.
)";

}  // namespace

int run_synth(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "llm") return run_synth_llm(rest);
  if (args[0] == "vlm") return run_synth_vlm(rest);
  if (args[0] == "whisper") return run_synth_whisper(rest);
  if (args[0] == "embed") return run_synth_embed(rest);
  if (args[0] == "lora") return run_synth_lora(rest);
  throw Error(ErrorCode::kInvalidInput,
              "unknown synthetic model '" + args[0] + "'\n" + std::string(kUsage), "kind");
}

}  // namespace mmserve::cli
