// `mmserve synth embed`: writes a synthetic BERT-shaped embedding model (random weights) for
// tests and benchmarks of /v1/embeddings.
#include <cstdio>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/embed_synth.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve synth embed -o FILE [options]
Writes a GGUF embedding model (llama.cpp's "bert" architecture, a WordPiece vocabulary) of a
real model's shape with random weights from a fixed seed. `mmserve serve -m FILE` serves it on
/v1/embeddings; its vectors are unit length and deterministic but carry no meaning.
  -o, --out FILE      the model file to write
      --preset NAME   tiny (default), minilm-l6, bge-base
      --pooling P     mean (default) or cls
      --type T        f16 (default) or f32
      --layers N      override the preset's layer count
      --embd N        override the preset's embedding width (a multiple of its heads)
      --vocab N       override the preset's vocabulary size
      --context N     override the preset's context (tokens; longer inputs are refused)
      --seed N        weights seed (default 1234)
)";

}  // namespace

int run_synth_embed(const std::vector<std::string>& args) {
  ArgParser p({"-o|--out", "--preset", "--pooling", "--type", "--layers", "--embd", "--vocab",
               "--context", "--seed"},
              {"-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  const std::string out = p.get("--out");
  if (out.empty()) {
    throw Error(ErrorCode::kInvalidInput, "option --out is required\n" + std::string(kUsage),
                "--out");
  }
  synth::EmbedSynthOptions options;
  options.shape = synth::embed_preset(p.get("--preset", "tiny"));
  options.shape.n_layer = p.get_int("--layers", options.shape.n_layer);
  options.shape.n_embd = p.get_int("--embd", options.shape.n_embd);
  options.shape.n_vocab = p.get_int("--vocab", options.shape.n_vocab);
  options.shape.n_ctx = p.get_int("--context", options.shape.n_ctx);
  options.pooling = p.get("--pooling", "mean");
  options.type = p.get("--type", "f16");
  options.seed = static_cast<uint64_t>(p.get_int("--seed", 1234));
  const auto report = synth::write_synthetic_embedding_model(out, options);
  std::printf("wrote %s: %llu parameters, %s, %s pooling, %.1f MiB\n", out.c_str(),
              static_cast<unsigned long long>(report.parameters), options.type.c_str(),
              options.pooling.c_str(), static_cast<double>(report.file_bytes) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace mmserve::cli
