// mmserve: one executable, several subcommands. This file only dispatches and turns errors
// into one line on stderr and a non-zero exit (2 for bad usage, 1 for everything else).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/versions.h"

namespace {

constexpr const char* kUsage = R"(mmserve: multimodal inference server

usage: mmserve COMMAND [options]
  serve      run the HTTP server (POST /v1/inference, OpenAI-compatible /v1/*)
  generate   generate text from a prompt with a GGUF model
  describe   describe images with a vision-language model (GGUF + mmproj)
  transcribe transcribe an audio file with a whisper.cpp model
  info       describe a GGUF model file
  plan       will it fit: memory a model needs here, and a setting that fits
  pull       download a model (Hugging Face Hub, whisper.cpp name, URL) into the models directory
  list       the models in the models directory (kind, architecture, quantization, size)
  rm         remove models from the models directory
  quantize   write a quantized copy of a GGUF or whisper.cpp model (Q8_0, Q4_K_M, ...)
  healthcheck  exit 0 when a running server is ready (GET /ready): for container healthchecks
  keys       create, list, revoke, rotate and update API keys (in the server's database)
  audit      read the audit log (in the server's database) as CSV or JSON lines
  dataset    review and export captured calls (serve --capture-db) as fine-tuning data
  scan       find personal data in a text file (the privacy detectors, a dry run)
  synth      write synthetic models (random weights, real shapes) for tests
  finetune   fine-tune a small F32 Llama model on exported data (JSONL), full weights, CPU
  --version  print the versions of mmserve and its engines

`mmserve COMMAND --help` describes each command.
)";

}  // namespace

namespace mmserve::cli {

void print_version() {
  std::printf("mmserve %s\nllama.cpp %s\nwhisper.cpp %s\nggml %s\nbackends %s\n", version(),
              llama_cpp_version().c_str(), whisper_cpp_version().c_str(),
              ggml_version_string().c_str(), backend_names().c_str());
}

}  // namespace mmserve::cli

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "--version" || command == "version") {
      mmserve::cli::print_version();
      return 0;
    }
    if (command == "generate") return mmserve::cli::run_generate(args);
    if (command == "finetune") return mmserve::cli::run_finetune(args);
    if (command == "healthcheck") return mmserve::cli::run_healthcheck(args);
    if (command == "info") return mmserve::cli::run_info(args);
    if (command == "plan") return mmserve::cli::run_plan(args);
    if (command == "serve") return mmserve::cli::run_serve(args);
    if (command == "keys") return mmserve::cli::run_keys(args);
    if (command == "dataset") return mmserve::cli::run_dataset(args);
    if (command == "audit") return mmserve::cli::run_audit(args);
    if (command == "scan") return mmserve::cli::run_scan(args);
    if (command == "quantize") return mmserve::cli::run_quantize(args);
    if (command == "describe") return mmserve::cli::run_describe(args);
    if (command == "synth") return mmserve::cli::run_synth(args);
    if (command == "transcribe") return mmserve::cli::run_transcribe(args);
    if (command == "pull") return mmserve::cli::run_pull(args);
    if (command == "list") return mmserve::cli::run_list(args);
    if (command == "rm") return mmserve::cli::run_rm(args);
    std::fprintf(stderr, "mmserve: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const mmserve::Error& e) {
    std::fprintf(stderr, "mmserve: error: %s\n", e.what());
    return e.code() == mmserve::ErrorCode::kInvalidInput ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mmserve: internal error: %s\n", e.what());
    return 1;
  }
}
