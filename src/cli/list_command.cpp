// `mmserve list` and `mmserve rm`: the model files in the models directory (what `pull` wrote
// there, or anything put there by hand), read from their headers without loading weights;
// and their removal by name. Files that cannot be read are listed with their error.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/human_units.h"
#include "core/model_locator.h"
#include "engine/gguf_inspect.h"
#include "engine/speech_model.h"
#include "hub/progress.h"

namespace mmserve::cli {
namespace fs = std::filesystem;
namespace {

struct Entry {
  std::string name, path, kind, architecture, quantization, error;
  uint64_t bytes = 0;
  uint64_t parameters = 0;  // 0: not known
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string count_text(uint64_t n) {
  return n == 0 ? "-" : human_count(n);
}

// whisper.cpp's ggml header: the weights' type (hparams' ftype % 1000, ggml_ftype numbering).
std::string whisper_ftype(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  int32_t h[12] = {};  // magic, n_vocab, ..., n_mels, ftype
  in.read(reinterpret_cast<char*>(h), sizeof(h));
  if (!in) return "";
  switch (h[11] % 1000) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 12: return "Q4_K";
    case 13: return "Q5_K";
    case 14: return "Q6_K";
    default: return "ftype " + std::to_string(h[11]);
  }
}

std::string whisper_size(int32_t audio_layers) {
  switch (audio_layers) {
    case 4: return "tiny";
    case 6: return "base";
    case 12: return "small";
    case 24: return "medium";
    case 32: return "large";
    default: return std::to_string(audio_layers) + " layers";
  }
}

Entry describe(const fs::path& path) {
  Entry e;
  e.name = path.filename().string();
  e.path = path.string();
  std::error_code ec;
  e.bytes = fs::file_size(path, ec);
  try {
    if (ends_with(e.name, ".gguf")) {
      const auto s = engine::inspect_gguf(e.path);
      e.kind = s.architecture == "clip" ? "projector" : "text";
      e.architecture = s.architecture;
      if (s.architecture == "clip" && !s.projector.type.empty()) {
        e.architecture += " (" + s.projector.type + ")";
      }
      e.quantization = s.file_type;
      e.parameters = s.n_params;
    } else {
      try {
        const auto shape = engine::check_speech_model_file(e.path, "path");
        e.kind = "speech";
        e.architecture = "whisper (" + whisper_size(shape.n_audio_layer) + ")";
        e.quantization = whisper_ftype(e.path);
      } catch (const Error&) {
        engine::check_vad_model_file(e.path, "path");  // throws: neither kind
        e.kind = "vad";
        e.architecture = "silero";
      }
    }
  } catch (const Error& err) {
    e.kind = "unreadable";
    e.error = err.what();
  }
  return e;
}

std::vector<Entry> scan(const fs::path& dir) {
  std::vector<Entry> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec) || name.starts_with(".")) continue;
    if (!ends_with(name, ".gguf") && !ends_with(name, ".bin")) continue;  // .partial, .lock
    out.push_back(describe(entry.path()));
  }
  std::ranges::sort(out, {}, &Entry::name);
  return out;
}

constexpr const char* kListUsage = R"(usage: mmserve list [--dir DIR] [--json]
The models in the models directory (default: $MMSERVE_MODELS_DIR, else
$XDG_DATA_HOME/mmserve/models, else ~/.local/share/mmserve/models): every *.gguf and *.bin with
its kind (text, projector, speech, vad), architecture, quantization, size and parameters, read
from the file's header. Files that are not models are listed with the reason.
)";

constexpr const char* kRmUsage = R"(usage: mmserve rm NAME... [--dir DIR]
Removes model files from the models directory, by file name or by name without .gguf/.bin,
and any unfinished download of them (NAME.partial).
)";

}  // namespace

int run_list(const std::vector<std::string>& args) {
  ArgParser p({"--dir"}, {"--json", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kListUsage;
    return 0;
  }
  if (!p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput, "list takes no argument: '" + p.positionals()[0] + "'");
  }
  const fs::path dir = p.has("--dir") ? p.get("--dir") : default_models_dir();
  const auto entries = scan(dir);
  if (p.flag("--json")) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : entries) {
      nlohmann::json o = {{"name", e.name}, {"path", e.path}, {"kind", e.kind}, {"bytes", e.bytes}};
      if (e.error.empty()) {
        o["architecture"] = e.architecture;
        o["quantization"] = e.quantization;
        o["parameters"] = e.parameters;
      } else {
        o["error"] = e.error;
      }
      j.push_back(o);
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (entries.empty()) {
    std::printf("no models in %s (`mmserve pull REF` downloads one)\n", dir.c_str());
    return 0;
  }
  size_t width = 4;
  for (const auto& e : entries) width = std::max(width, e.name.size());
  std::printf("%-*s  %-10s  %-22s  %-8s  %10s  %8s\n", static_cast<int>(width), "NAME", "KIND",
              "ARCHITECTURE", "QUANT", "SIZE", "PARAMS");
  for (const auto& e : entries) {
    if (!e.error.empty()) {
      std::printf("%-*s  %-10s  %s\n", static_cast<int>(width), e.name.c_str(), e.kind.c_str(),
                  e.error.c_str());
      continue;
    }
    std::printf("%-*s  %-10s  %-22s  %-8s  %10s  %8s\n", static_cast<int>(width), e.name.c_str(),
                e.kind.c_str(), e.architecture.c_str(),
                e.quantization.empty() ? "-" : e.quantization.c_str(), human_bytes(e.bytes).c_str(),
                count_text(e.parameters).c_str());
  }
  return 0;
}

int run_rm(const std::vector<std::string>& args) {
  ArgParser p({"--dir"}, {"-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kRmUsage;
    return 0;
  }
  if (p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput, "rm takes the NAME of one or more models", "NAME");
  }
  const fs::path dir = p.has("--dir") ? p.get("--dir") : default_models_dir();
  // Every name is checked before anything is removed: a typo removes nothing.
  std::vector<std::vector<fs::path>> targets;
  for (const auto& name : p.positionals()) {
    if (name.empty() || name.starts_with(".") || name.find_first_of("/\\") != std::string::npos) {
      throw Error(ErrorCode::kInvalidInput,
                  "rm takes model file names in " + dir.string() + ", not paths: '" + name + "'",
                  "NAME");
    }
    std::vector<fs::path> found;
    std::error_code ec;
    for (const std::string& candidate : {name, name + ".gguf", name + ".bin"}) {
      const fs::path path = dir / candidate;
      if (fs::is_regular_file(path, ec) || fs::is_regular_file(path.string() + ".partial", ec)) {
        if (fs::is_regular_file(path, ec)) found.push_back(path);
        if (fs::is_regular_file(path.string() + ".partial", ec)) {
          found.push_back(path.string() + ".partial");
        }
        break;
      }
    }
    if (found.empty()) {
      throw Error(
          ErrorCode::kNotFound,
          "no model '" + name + "' in " + dir.string() + " (`mmserve list` shows what is there)",
          "NAME");
    }
    targets.push_back(std::move(found));
  }
  for (const auto& paths : targets) {
    for (const auto& path : paths) {
      std::error_code ec;
      if (!fs::remove(path, ec) && ec) {
        throw Error(ErrorCode::kInternal, "cannot remove " + path.string() + ": " + ec.message());
      }
      std::printf("removed %s\n", path.c_str());
    }
  }
  return 0;
}

}  // namespace mmserve::cli
