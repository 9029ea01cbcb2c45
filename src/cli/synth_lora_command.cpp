// `mmserve synth lora`: writes a synthetic LoRA adapter (random A and B) for a base model, so
// that adapter serving can be tested without a trained adapter.
#include <cstdio>
#include <iostream>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/lora_synth.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve synth lora --base BASE.gguf -o OUT.gguf [options]
Writes a LoRA adapter GGUF for BASE (llama.cpp's adapter format, loadable with --lora) with
random A and B from a fixed seed. A real LoRA starts with B = 0; here B is random too, so the
adapter visibly changes what the model generates. Its text is no better, only different.
      --base FILE       the base model (a GGUF text model) the adapter is for
  -o, --out FILE        the adapter file to write
      --rank R          LoRA rank (default 8; at most the smallest adapted dimension)
      --alpha A         adapter.lora.alpha; llama.cpp scales B*A by alpha/rank
                        (default 2*rank, the common PEFT choice)
      --targets LIST    comma-separated matrices of each layer to adapt: attn_q, attn_k,
                        attn_v, attn_output, ffn_gate, ffn_up, ffn_down, and output (the LM
                        head of an untied model); default all seven per-layer matrices
      --magnitude M     RMS of the update's output for inputs of RMS 1 (default 0.5:
                        greedy text changes within a few tokens, logits stay finite)
      --scale-hint S    the scale users should apply, written as mmserve.lora.scale_hint
                        (default 1; llama.cpp takes the scale at run time, not from the file)
      --seed N          weights seed (default 42)
      --type T          f32 (default) or f16
      --name NAME       general.name (default synthetic-lora-r<rank>)
)";

std::vector<std::string> split_targets(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    const std::string item =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) {
      throw Error(ErrorCode::kInvalidInput, "--targets has an empty entry", "--targets");
    }
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The writer names its fields ("rank"); the CLI names its options ("--rank").
std::string option_of(const std::string& field) {
  if (field == "base" || field == "rank" || field == "alpha" || field == "targets" ||
      field == "magnitude" || field == "type" || field == "out") {
    return "--" + field;
  }
  if (field == "scale_hint") return "--scale-hint";
  return field;
}

}  // namespace

int run_synth_lora(const std::vector<std::string>& args) {
  ArgParser p({"--base", "-o|--out", "--rank", "--alpha", "--targets", "--magnitude",
               "--scale-hint", "--seed", "--type", "--name"},
              {"-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  const std::string base = p.get("--base");
  const std::string out = p.get("--out");
  for (const auto& [value, option] : {std::pair{base, "--base"}, std::pair{out, "--out"}}) {
    if (value.empty()) {
      throw Error(ErrorCode::kInvalidInput,
                  "option " + std::string(option) + " is required\n" + kUsage, option);
    }
  }
  synth::LoraSynthOptions options;
  options.rank = p.get_int("--rank", options.rank);
  options.alpha = p.get_float("--alpha", 2.0F * static_cast<float>(options.rank));
  if (p.has("--targets")) options.targets = split_targets(p.get("--targets"));
  options.magnitude = p.get_float("--magnitude", options.magnitude);
  options.scale_hint = p.get_float("--scale-hint", options.scale_hint);
  const int seed = p.get_int("--seed", 42);
  if (seed < 0) throw Error(ErrorCode::kInvalidInput, "--seed must be >= 0", "--seed");
  options.seed = static_cast<uint64_t>(seed);
  options.type = p.get("--type", options.type);
  options.name = p.get("--name");
  synth::LoraSynthReport report;
  try {
    report = synth::write_synthetic_lora(base, out, options);
  } catch (const Error& e) {
    const std::string option = option_of(e.field());
    const std::string what = e.what();
    throw Error(e.code(), option.empty() ? what : option + ": " + what, option);
  }
  std::printf(
      "wrote %s: LoRA for %s (%s), rank %d, alpha %g, %zu matrices, %llu parameters, "
      "%.1f KiB\n",
      out.c_str(), base.c_str(), report.architecture.c_str(), options.rank,
      static_cast<double>(options.alpha), report.adapted.size(),
      static_cast<unsigned long long>(report.parameters),
      static_cast<double>(report.file_bytes) / 1024.0);
  return 0;
}

}  // namespace mmserve::cli
