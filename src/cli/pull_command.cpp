// `mmserve pull REF`: a model from the Hugging Face Hub (or $HF_ENDPOINT), a whisper.cpp model
// by name, or a file by URL, into the models directory: resumable, verified and atomic (see
// hub/download.h). Prints where each file went and the command that serves it.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/model_locator.h"
#include "hub/download.h"
#include "hub/hub_client.h"
#include "hub/model_ref.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve pull REF [options]
Downloads a model into the models directory ($MMSERVE_MODELS_DIR, else
$XDG_DATA_HOME/mmserve/models, else ~/.local/share/mmserve/models).

REF:
  hf:OWNER/REPO              a GGUF repository: Q4_K_M when it has one, else Q8_0, else the
                             first GGUF by name; also its mmproj-*.gguf (F16 preferred)
  hf:OWNER/REPO:QUANT        that quantization (case-insensitive), e.g. :Q8_0, :IQ4_XS
  hf:OWNER/REPO:FILE.gguf    that file (also hf:OWNER/REPO/PATH/FILE.gguf)
                             ("hf:" may be left out; Hub resolve URLs work too)
  whisper:NAME               a whisper.cpp model (ggerganov/whisper.cpp ggml-NAME.bin),
                             e.g. whisper:base.en, whisper:large-v3-turbo-q5_0
  https://HOST/PATH/FILE     any other file by URL

options:
  --dir DIR          download into DIR instead of the models directory
  --revision REV     the Hub branch, tag or commit (default main)
  --sha256 HEX       the expected SHA-256 (one-file REFs; the Hub's own is checked anyway)
  --output NAME      the local file name (one-file REFs)
  --no-mmproj        only the model, not its projector
  --json             print {"files": [{"path", "bytes", "sha256", "downloaded"}], "command"}

A broken transfer resumes from NAME.partial (HTTP Range), here or in a later run. A file is
renamed into place only once its size and SHA-256 are checked. Two pulls of one file at once:
the second waits for the first. Environment: HF_TOKEN (sent to the Hub only, never to the
host it redirects to), HF_ENDPOINT (a mirror, e.g. https://hf-mirror.com), http_proxy,
https_proxy, no_proxy.
)";

bool is_sha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string quoted(const std::string& path) {
  if (path.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+=:,") ==
      std::string::npos) {
    return path;
  }
  std::string out = "'";
  for (char c : path) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

int run_pull(const std::vector<std::string>& args) {
  ArgParser p({"--dir", "--revision", "--sha256", "--output"},
              {"--no-mmproj", "--json", "-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::cout << kUsage;
    return 0;
  }
  if (p.positionals().size() != 1) {
    throw Error(ErrorCode::kInvalidInput,
                "pull takes one REF (see `mmserve pull --help`), got " +
                    std::to_string(p.positionals().size()),
                "REF");
  }
  const auto settings = hub::HubSettings::from_environment();
  const hub::ModelRef ref =
      hub::parse_model_ref(p.positionals().front(), settings.endpoint, p.get("--revision", "main"));
  const std::string sha = lower(p.get("--sha256"));
  if (p.has("--sha256") && !is_sha256(sha)) {
    throw Error(ErrorCode::kInvalidInput, "--sha256 wants 64 hexadecimal digits", "--sha256");
  }
  const std::filesystem::path dir = p.has("--dir") ? p.get("--dir") : default_models_dir();

  hub::Resolved files = hub::resolve_ref(ref, settings);
  if (p.flag("--no-mmproj")) files.mmproj.clear();
  const bool one_file = files.model.size() == 1 && files.mmproj.empty();
  if ((p.has("--sha256") || p.has("--output")) && !one_file) {
    throw Error(ErrorCode::kInvalidInput,
                std::string(p.has("--sha256") ? "--sha256" : "--output") + " needs a REF of one " +
                    "file; " + ref.text + " is " +
                    std::to_string(files.model.size() + files.mmproj.size()) +
                    " files (name one, or add --no-mmproj)",
                p.has("--sha256") ? "--sha256" : "--output");
  }
  if (p.has("--sha256")) {
    if (!files.model[0].sha256.empty() && files.model[0].sha256 != sha) {
      throw Error(ErrorCode::kInvalidInput,
                  "--sha256 " + sha + " is not the Hub's sha256 of " + files.model[0].name + " (" +
                      files.model[0].sha256 + ")",
                  "--sha256");
    }
    files.model[0].sha256 = sha;
  }
  if (p.has("--output")) files.model[0].name = p.get("--output");
  if (files.model[0].name.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "bad model REF '" + ref.text + "': the URL names no file (add --output NAME)",
                "REF");
  }

  if (!files.why.empty()) {
    std::string names;
    for (const auto& f : files.model) names += (names.empty() ? "" : ", ") + f.name;
    std::fprintf(stderr, "%s: %s: %s\n", ref.repo.c_str(), files.why.c_str(), names.c_str());
  }
  nlohmann::json out_files = nlohmann::json::array();
  std::vector<std::filesystem::path> model_paths, mmproj_paths;
  for (const auto* group : {&files.model, &files.mmproj}) {
    for (const auto& f : *group) {
      const hub::DownloadResult r = hub::download(f, dir, settings);
      (group == &files.model ? model_paths : mmproj_paths).push_back(r.path);
      out_files.push_back({{"path", r.path.string()},
                           {"bytes", r.bytes},
                           {"sha256", r.sha256},
                           {"downloaded", r.downloaded}});
    }
  }

  const std::string model = model_paths.front().string();
  std::string command;
  if (ref.kind == hub::ModelRef::Kind::kWhisper ||
      (lower(model).ends_with(".bin") && ref.kind == hub::ModelRef::Kind::kUrl)) {
    command = "mmserve serve --whisper-model " + quoted(model);
  } else {
    command = "mmserve serve -m " + quoted(model);  // a split model: its first part
    if (!mmproj_paths.empty()) command += " --mmproj " + quoted(mmproj_paths.front().string());
  }
  if (p.flag("--json")) {
    std::cout << nlohmann::json{{"files", out_files}, {"command", command}}.dump(2) << "\n";
    return 0;
  }
  for (const auto& path : model_paths) std::printf("model:  %s\n", path.c_str());
  for (const auto& path : mmproj_paths) std::printf("mmproj: %s\n", path.c_str());
  std::printf("serve it with: %s\n", command.c_str());
  return 0;
}

}  // namespace mmserve::cli
