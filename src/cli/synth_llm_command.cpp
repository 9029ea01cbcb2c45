// `mmserve synth llm`: writes a synthetic language model of a real model's shape (random
// weights), F16/F32 or quantized with llama.cpp's quantizer, for benchmarks.
#include <cstdio>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/llm_synth.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve synth llm -o FILE [options]
Writes a GGUF language model (llama.cpp's "llama" architecture) of a real model's shape with
random weights from a fixed seed. Speed depends on shape and type, not on weight values, so it
benchmarks what the real model would; its text is gibberish.
  -o, --out FILE      the model file to write
      --preset NAME   tiny (default), llama-3.2-1b, moe-small (8 experts, 2 used per token)
      --type T        f16 (default), f32, q8_0, q4_k_m (quantized from F16 by llama.cpp)
      --layers N      override the preset's layer count
      --context N     override the preset's training context (tokens)
      --embd N        override the preset's embedding width (heads keep their count)
      --vocab N       override the preset's vocabulary size (at least 512)
      --seed N        weights seed (default 1234)
  -t, --threads N     quantizer threads (default: all cores)
)";

}  // namespace

int run_synth_llm(const std::vector<std::string>& args) {
  ArgParser p({"-o|--out", "--preset", "--type", "--layers", "--context", "--embd", "--vocab",
               "--seed", "-t|--threads"},
              {"-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  const std::string out = p.get("--out");
  if (out.empty())
    throw Error(ErrorCode::kInvalidInput, "option --out is required\n" + std::string(kUsage),
                "--out");
  synth::LlmSynthOptions options;
  options.shape = synth::llm_preset(p.get("--preset", "tiny"));
  options.shape.n_layer = p.get_int("--layers", options.shape.n_layer);
  options.shape.n_ctx = p.get_int("--context", options.shape.n_ctx);
  options.shape.n_embd = p.get_int("--embd", options.shape.n_embd);
  options.shape.n_vocab = p.get_int("--vocab", options.shape.n_vocab);
  options.type = p.get("--type", "f16");
  options.seed = static_cast<uint64_t>(p.get_int("--seed", 1234));
  options.threads = p.get_int("--threads", 0);
  const auto report = synth::write_synthetic_llm(out, options);
  std::printf("wrote %s: %llu parameters, %s, %.1f MiB\n", out.c_str(),
              static_cast<unsigned long long>(report.parameters), options.type.c_str(),
              static_cast<double>(report.file_bytes) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace mmserve::cli
