// `mmserve synth llm`: writes a synthetic language model of a real model's shape (random
// weights), F16/F32 or quantized with llama.cpp's quantizer, for benchmarks.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

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
      --untied        a separate output matrix: with tied embeddings a random model mostly
                      repeats its last token; untied, its tokens are varied (tests of formats)
      --chat-template-file FILE
                      a Jinja chat template to embed (tokenizer.chat_template), e.g. one of
                      llama.cpp's models/templates/*.jinja
      --special-tokens LIST
                      comma-separated special tokens the template writes ("[THINK],[/THINK]"),
                      added to the vocabulary as single control tokens
  -t, --threads N     quantizer threads (default: all cores)
)";

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size() && !list.empty()) {
    const size_t comma = list.find(',', start);
    const std::string item =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) {
      throw Error(ErrorCode::kInvalidInput, "--special-tokens has an empty entry",
                  "--special-tokens");
    }
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

int run_synth_llm(const std::vector<std::string>& args) {
  ArgParser p({"-o|--out", "--preset", "--type", "--layers", "--context", "--embd", "--vocab",
               "--seed", "--chat-template-file", "--special-tokens", "-t|--threads"},
              {"-h|--help", "--untied"});
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
  if (p.flag("--untied")) options.shape.tied_embeddings = false;
  options.type = p.get("--type", "f16");
  options.seed = static_cast<uint64_t>(p.get_int("--seed", 1234));
  options.threads = p.get_int("--threads", 0);
  if (const std::string file = p.get("--chat-template-file"); !file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw Error(ErrorCode::kInvalidInput, "cannot read --chat-template-file " + file,
                  "--chat-template-file");
    }
    options.chat_template.assign(std::istreambuf_iterator<char>(in), {});
  }
  options.special_tokens = split_commas(p.get("--special-tokens"));
  const auto report = synth::write_synthetic_llm(out, options);
  std::printf("wrote %s: %llu parameters, %s, %.1f MiB\n", out.c_str(),
              static_cast<unsigned long long>(report.parameters), options.type.c_str(),
              static_cast<double>(report.file_bytes) / (1024.0 * 1024.0));
  for (size_t i = 0; i < options.special_tokens.size(); ++i) {
    std::printf("special token %s = %d\n", options.special_tokens[i].c_str(),
                report.special_token_ids[i]);
  }
  return 0;
}

}  // namespace mmserve::cli
