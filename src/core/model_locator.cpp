#include "core/model_locator.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
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

std::string locate_text_model(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (auto env = env_or_empty("MMSERVE_MODEL"); !env.empty()) return env;

  const std::string dir = default_models_dir();
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec) && entry.path().extension() == ".gguf" &&
        entry.path().filename().string().find("mmproj") == std::string::npos) {
      found.push_back(entry.path().string());
    }
  }
  if (!found.empty()) return *std::ranges::min_element(found);
  throw Error(ErrorCode::kNotFound,
              "no model given and none found: looked at -m/--model, $MMSERVE_MODEL and " + dir +
                  "/*.gguf. Pass -m FILE.gguf, set MMSERVE_MODEL, or put a .gguf file in " + dir,
              "model");
}

}  // namespace mmserve
