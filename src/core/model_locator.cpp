#include "core/model_locator.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace mmserve {
namespace fs = std::filesystem;

namespace {
std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

std::string default_models_dir() {
  if (auto dir = env_or_empty("MMSERVE_MODELS_DIR"); !dir.empty()) return dir;
  if (auto xdg = env_or_empty("XDG_DATA_HOME"); !xdg.empty()) return xdg + "/mmserve/models";
  if (auto home = env_or_empty("HOME"); !home.empty()) return home + "/.local/share/mmserve/models";
  return "./models";
}

namespace {

// The first file of the model directory by name that `keep` accepts (by its file name); "".
template <class Keep>
std::string first_in_models_dir(const std::string& dir, Keep keep) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec) && keep(entry.path().filename().string())) {
      found.push_back(entry.path().string());
    }
  }
  return found.empty() ? std::string() : *std::ranges::min_element(found);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string locate_text_model(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (auto env = env_or_empty("MMSERVE_MODEL"); !env.empty()) return env;

  const std::string dir = default_models_dir();
  const std::string found = first_in_models_dir(dir, [](const std::string& name) {
    return ends_with(name, ".gguf") && name.find("mmproj") == std::string::npos;
  });
  if (!found.empty()) return found;
  throw Error(ErrorCode::kNotFound,
              "no model given and none found: looked at -m/--model, $MMSERVE_MODEL and " + dir +
                  "/*.gguf. Pass -m FILE.gguf, set MMSERVE_MODEL, or put a .gguf file in " + dir,
              "model");
}

bool text_model_from_models_dir() {
  return env_or_empty("MMSERVE_MODEL").empty();
}

std::string find_projector_in_models_dir() {
  return first_in_models_dir(default_models_dir(), [](const std::string& name) {
    return name.starts_with("mmproj") && ends_with(name, ".gguf");
  });
}

std::string find_whisper_in_models_dir() {
  return first_in_models_dir(default_models_dir(), [](const std::string& name) {
    return name.starts_with("ggml-") && ends_with(name, ".bin") &&
           name.find("silero") == std::string::npos;
  });
}

}  // namespace mmserve
