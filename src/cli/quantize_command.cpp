// `mmserve quantize IN OUT TYPE`: makes a smaller model file. GGUF models go through llama.cpp's
// quantizer (engine/gguf_quantize), whisper.cpp .bin models through ggml's (engine/
// whisper_quantize); the format is told by the file's magic. The result is written to
// OUT.partial and renamed to OUT only when complete, so a failed run leaves no broken OUT.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "engine/gguf_quantize.h"
#include "engine/whisper_quantize.h"

namespace mmserve::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHelp = R"(usage: mmserve quantize IN OUT TYPE [options]
Writes OUT, a copy of model IN with its weights quantized to TYPE. IN is a GGUF model (F32, F16
or BF16; an already-quantized one with --allow-requantize) or a whisper.cpp ggml .bin model
(F16 or F32). Progress goes to stderr, one line per tensor; the summary to stdout.
  -t, --threads N          quantizer threads (default: all cores)
      --imatrix FILE       importance matrix (llama.cpp's imatrix output, GGUF or the older
                           binary format): better low-bit quants; IQ1/IQ2 types need one (GGUF)
      --tensor-type P=T    tensors whose name matches regex P become ggml type T, e.g.
                           attn_v=q8_0 (repeatable; GGUF)
      --allow-requantize   accept already-quantized input tensors (quality suffers; GGUF)
      --pure               every tensor TYPE, no k-quant mixture (GGUF)
      --leave-output-tensor  keep output.weight unquantized (GGUF)
      --json               the summary as JSON
GGUF types: %s
whisper.cpp types: %s
)";

std::string names(const std::vector<engine::GgufTypeInfo>& types) {
  std::string out;
  for (const auto& t : types) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

enum class Format { kGguf, kWhisper };

Format detect(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(ErrorCode::kNotFound, "model file not found: " + path, "IN");
  if (!fs::is_regular_file(path, ec))
    throw Error(ErrorCode::kModelLoad, path + " is not a file", "IN");
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, 4)) {
    throw Error(ErrorCode::kModelLoad, path + " is too short to be a model file", "IN");
  }
  if (std::string(magic, 4) == "GGUF") return Format::kGguf;
  if (engine::is_whisper_ggml_file(path)) return Format::kWhisper;
  throw Error(ErrorCode::kModelLoad, path + " is neither a GGUF nor a whisper.cpp ggml model",
              "IN");
}

void check_output(const std::string& in, const std::string& out) {
  std::error_code ec, ec_in, ec_out;
  // equivalent() sees hard and symbolic links; the canonical paths a name not yet created.
  const fs::path canon_in = fs::weakly_canonical(in, ec_in);
  const fs::path canon_out = fs::weakly_canonical(out, ec_out);
  if (fs::equivalent(in, out, ec) || (!ec_in && !ec_out && canon_in == canon_out)) {
    throw Error(ErrorCode::kInvalidInput, "OUT must differ from IN (" + in + ")", "OUT");
  }
  fs::path dir = fs::path(out).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) {
    throw Error(ErrorCode::kNotFound, "output directory does not exist: " + dir.string(), "OUT");
  }
  if (fs::is_directory(out, ec)) {
    throw Error(ErrorCode::kInvalidInput, "OUT is a directory: " + out, "OUT");
  }
}

double bits_per_weight(uint64_t bytes, uint64_t params) {
  return params > 0 ? static_cast<double>(bytes) * 8.0 / static_cast<double>(params) : 0.0;
}

void print_progress(const engine::QuantizeProgress& p) {
  std::fprintf(stderr, "[%4d/%4d] %-40s %s\n", p.index, p.total, p.tensor.c_str(), p.type.c_str());
}

}  // namespace

int run_quantize(const std::vector<std::string>& args) {
  ArgParser p({"-t|--threads", "--imatrix", "--tensor-type"},
              {"--allow-requantize", "--pure", "--leave-output-tensor", "--json", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::printf(kHelp, names(engine::gguf_quantize_types()).c_str(),
                names(engine::whisper_quantize_types()).c_str());
    return 0;
  }
  if (p.positionals().size() != 3) {
    throw Error(ErrorCode::kInvalidInput,
                "usage: mmserve quantize IN OUT TYPE [options] (see mmserve quantize --help)");
  }
  const std::string in = p.positionals()[0], out = p.positionals()[1], type = p.positionals()[2];
  const int threads = p.get_int("--threads", 0);
  if (threads < 0)
    throw Error(ErrorCode::kInvalidInput, "--threads must be at least 1", "--threads");
  const Format format = detect(in);

  engine::GgufQuantizeOptions gguf;
  engine::WhisperQuantizeOptions whisper;
  if (format == Format::kGguf) {
    gguf.type = type;
    gguf.threads = threads;
    gguf.imatrix_path = p.get("--imatrix");
    gguf.tensor_types = p.get_all("--tensor-type");
    gguf.allow_requantize = p.flag("--allow-requantize");
    gguf.pure = p.flag("--pure");
    gguf.leave_output_tensor = p.flag("--leave-output-tensor");
    gguf.progress = print_progress;
    engine::validate_gguf_quantize_options(gguf);
  } else {
    for (const char* opt : {"--imatrix", "--tensor-type"}) {
      if (p.has(opt)) {
        throw Error(ErrorCode::kInvalidInput,
                    std::string(opt) + " applies to GGUF models, not whisper.cpp ones", opt);
      }
    }
    for (const char* opt : {"--allow-requantize", "--pure", "--leave-output-tensor"}) {
      if (p.flag(opt)) {
        throw Error(ErrorCode::kInvalidInput,
                    std::string(opt) + " applies to GGUF models, not whisper.cpp ones", opt);
      }
    }
    whisper.type = type;
    whisper.threads = threads;
    whisper.progress = print_progress;
    engine::validate_whisper_quantize_type(type);
  }
  check_output(in, out);

  const std::string partial = out + ".partial";
  const auto start = std::chrono::steady_clock::now();
  engine::QuantizeResult r;
  try {
    r = format == Format::kGguf ? engine::quantize_gguf(in, partial, gguf)
                                : engine::quantize_whisper(in, partial, whisper);
    fs::rename(partial, out);
  } catch (...) {
    std::error_code ec;
    fs::remove(partial, ec);
    throw;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t in_bytes = fs::file_size(in), out_bytes = fs::file_size(out);
  const double ratio = out_bytes > 0 ? static_cast<double>(in_bytes) / out_bytes : 0.0;
  const double bpw_in = bits_per_weight(r.input_weights_bytes, r.parameters);
  const double bpw_out = bits_per_weight(r.weights_bytes, r.parameters);
  const char* kind = format == Format::kGguf ? "gguf" : "whisper";
  if (p.flag("--json")) {
    nlohmann::json j = {{"input", in},
                        {"output", out},
                        {"format", kind},
                        {"type", r.type},
                        {"input_bytes", in_bytes},
                        {"output_bytes", out_bytes},
                        {"ratio", ratio},
                        {"parameters", r.parameters},
                        {"input_bits_per_weight", bpw_in},
                        {"bits_per_weight", bpw_out},
                        {"tensors", r.tensors},
                        {"quantized_tensors", r.quantized_tensors},
                        {"seconds", seconds}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("input:          %s (%s, %.2f MiB, %.2f bits per weight)\n", in.c_str(), kind,
              in_bytes / 1048576.0, bpw_in);
  std::printf("output:         %s (%s, %.2f MiB, %.2f bits per weight)\n", out.c_str(),
              r.type.c_str(), out_bytes / 1048576.0, bpw_out);
  std::printf("ratio:          %.2fx smaller\n", ratio);
  std::printf("tensors:        %d (%d converted)\n", r.tensors, r.quantized_tensors);
  std::printf("time:           %.2f s\n", seconds);
  return 0;
}

}  // namespace mmserve::cli
