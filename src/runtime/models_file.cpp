#include "runtime/models_file.h"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "runtime/lora_table.h"

namespace mmserve::runtime {
namespace {

const std::set<std::string, std::less<>> kTextKeys = {
    "name",       "aliases", "kind",   "path",    "mmproj",  "parallel",  "ctx_size", "batch_size",
    "gpu_layers", "threads", "pinned", "preload", "cpu_moe", "n_cpu_moe", "capture",  "lora"};
const std::set<std::string, std::less<>> kSpeechKeys = {
    "name", "aliases", "kind", "path", "vad", "parallel", "threads", "pinned", "preload"};
const std::set<std::string, std::less<>> kEmbeddingKeys = {
    "name",       "aliases",    "kind",    "path",   "ctx_size",
    "batch_size", "gpu_layers", "threads", "pinned", "preload"};

// "FILE:LINE: model 'NAME': " for messages about one entry.
struct Where {
  const std::string& origin;
  std::string name;

  std::string at(const toml::node& node) const {
    std::string s = origin;
    if (node.source().begin.line > 0) {
      s += ":" + std::to_string(node.source().begin.line);
    }
    s += ": ";
    if (!name.empty()) {
      s += "model '" + name + "': ";
    }
    return s;
  }
};

[[noreturn]] void fail(const Where& where, const toml::node& node, const std::string& key,
                       const std::string& message) {
  throw Error(ErrorCode::kInvalidInput, where.at(node) + message, key);
}

std::string string_key(const toml::table& t, const Where& w, const std::string& key,
                       bool required) {
  const toml::node* n = t.get(key);
  if (n == nullptr) {
    if (required) {
      fail(w, t, key, "'" + key + "' is required");
    }
    return {};
  }
  const auto* s = n->as_string();
  if (s == nullptr || s->get().empty()) {
    fail(w, *n, key, "'" + key + "' must be a non-empty string");
  }
  return s->get();
}

int32_t int_key(const toml::table& t, const Where& w, const std::string& key, int32_t fallback,
                int32_t min, int32_t max) {
  const toml::node* n = t.get(key);
  if (n == nullptr) {
    return fallback;
  }
  const auto* i = n->as_integer();
  if (i == nullptr || i->get() < min || i->get() > max) {
    fail(w, *n, key,
         "'" + key + "' must be an integer from " + std::to_string(min) + " to " +
             std::to_string(max));
  }
  return static_cast<int32_t>(i->get());
}

bool bool_key(const toml::table& t, const Where& w, const std::string& key, bool fallback) {
  const toml::node* n = t.get(key);
  if (n == nullptr) {
    return fallback;
  }
  const auto* b = n->as_boolean();
  if (b == nullptr) {
    fail(w, *n, key, "'" + key + "' must be true or false");
  }
  return b->get();
}

std::string resolved(const std::string& path, const std::string& base_dir) {
  if (path.empty() || std::filesystem::path(path).is_absolute() || base_dir.empty()) {
    return path;
  }
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

// lora = ["name=FILE[:SCALE]", ...] or [{ name = "...", path = "...", scale = 0.5 }, ...],
// paths relative to the file.
std::vector<LoraSpec> read_loras(const toml::node& node, const Where& w, const std::string& base) {
  const auto* arr = node.as_array();
  if (arr == nullptr) {
    fail(
        w, node, "lora",
        R"('lora' must be an array: ["name=FILE[:SCALE]", ...] or [{name = "...", path = "..."}])");
  }
  std::vector<LoraSpec> loras;
  for (const auto& item : *arr) {
    LoraSpec lora;
    if (const auto* s = item.as_string()) {
      try {
        lora = parse_lora_spec(s->get(), "lora");
      } catch (const Error& e) {
        fail(w, item, "lora", e.what());
      }
    } else if (const auto* t = item.as_table()) {
      for (const auto& [key, value] : *t) {
        if (key.str() != "name" && key.str() != "path" && key.str() != "scale") {
          fail(w, value, "lora",
               "unknown key '" + std::string(key.str()) +
                   "' in a lora entry; keys: name, path, scale");
        }
      }
      lora.name = string_key(*t, w, "name", true);
      lora.path = string_key(*t, w, "path", true);
      if (const toml::node* scale = t->get("scale")) {
        const auto v = scale->value<double>();
        if (!v) fail(w, *scale, "lora", "a lora entry's 'scale' must be a number");
        lora.scale = static_cast<float>(*v);
      }
      try {
        engine::LoraAdapter::check_name(lora.name, "lora");
        engine::LoraAdapter::check_scale(lora.scale, "lora");
      } catch (const Error& e) {
        fail(w, item, "lora", e.what());
      }
    } else {
      fail(w, item, "lora", "each 'lora' entry is a \"name=FILE[:SCALE]\" string or a table");
    }
    lora.path = resolved(lora.path, base);
    for (const auto& other : loras) {
      if (other.name == lora.name)
        fail(w, item, "lora", "adapter '" + lora.name + "' is given twice");
    }
    loras.push_back(std::move(lora));
  }
  return loras;
}

ModelSpec read_model(const toml::table& t, const std::string& origin, const std::string& base,
                     const ModelSpec& defaults) {
  Where w{origin, {}};
  w.name = string_key(t, w, "name", true);
  ModelSpec spec = defaults;
  spec.name = w.name;
  const std::string kind = t.contains("kind") ? string_key(t, w, "kind", true) : "text";
  if (kind != "text" && kind != "speech" && kind != "embedding") {
    fail(w, *t.get("kind"), "kind",
         R"('kind' must be "text", "speech" or "embedding", not ")" + kind + "\"");
  }
  spec.kind = kind == "speech"      ? ModelKind::kSpeech
              : kind == "embedding" ? ModelKind::kEmbedding
                                    : ModelKind::kText;
  const auto& allowed = spec.kind == ModelKind::kSpeech      ? kSpeechKeys
                        : spec.kind == ModelKind::kEmbedding ? kEmbeddingKeys
                                                             : kTextKeys;
  for (const auto& [key, node] : t) {
    if (!allowed.contains(key.str())) {
      std::string list;
      for (const auto& k : allowed) {
        list += (list.empty() ? "" : ", ") + k;
      }
      std::string message = "unknown key '";
      message.append(key.str())
          .append("' for a ")
          .append(kind)
          .append(" model; keys: ")
          .append(list);
      fail(w, node, std::string(key.str()), message);
    }
  }
  if (const toml::node* a = t.get("aliases")) {
    const auto* arr = a->as_array();
    if (arr == nullptr) {
      fail(w, *a, "aliases", "'aliases' must be an array of strings");
    }
    for (const auto& item : *arr) {
      const auto* s = item.as_string();
      if (s == nullptr || s->get().empty()) {
        fail(w, item, "aliases", "'aliases' must be an array of non-empty strings");
      }
      spec.aliases.push_back(s->get());
    }
  }
  spec.path = resolved(string_key(t, w, "path", true), base);
  spec.threads = int_key(t, w, "threads", defaults.threads, 0, 1024);
  spec.pinned = bool_key(t, w, "pinned", defaults.pinned);
  spec.preload = bool_key(t, w, "preload", defaults.preload) || spec.pinned;
  spec.capture = bool_key(t, w, "capture", false);
  if (spec.kind == ModelKind::kText) {
    spec.mmproj_path = resolved(string_key(t, w, "mmproj", false), base);
    spec.parallel = int_key(t, w, "parallel", spec.parallel, 1, 256);
    spec.ctx_size = int_key(t, w, "ctx_size", defaults.ctx_size, 0, 1 << 24);
    spec.batch_size = int_key(t, w, "batch_size", spec.batch_size, 1, 1 << 16);
    spec.gpu_layers = int_key(t, w, "gpu_layers", spec.gpu_layers, -1, 1 << 16);
    spec.cpu_moe_layers = int_key(t, w, "n_cpu_moe", spec.cpu_moe_layers, 0, 1 << 16);
    if (bool_key(t, w, "cpu_moe", spec.cpu_moe_layers < 0)) spec.cpu_moe_layers = -1;
    if (const toml::node* lora = t.get("lora")) spec.loras = read_loras(*lora, w, base);
  } else if (spec.kind == ModelKind::kEmbedding) {
    spec.ctx_size = int_key(t, w, "ctx_size", 0, 0, 1 << 20);  // the most tokens of one input
    spec.batch_size = int_key(t, w, "batch_size", spec.batch_size, 1, 1 << 16);
    spec.gpu_layers = int_key(t, w, "gpu_layers", spec.gpu_layers, -1, 1 << 16);
  } else {
    spec.vad_path = resolved(string_key(t, w, "vad", false), base);
    spec.speech_parallel = int_key(t, w, "parallel", spec.speech_parallel, 1, 64);
  }
  return spec;
}

}  // namespace

std::vector<ModelSpec> parse_models_text(const std::string& text, const std::string& origin,
                                         const std::string& base_dir, const ModelSpec& defaults) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw Error(
        ErrorCode::kInvalidInput,
        origin + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
        "models");
  }
  for (const auto& [key, node] : root) {
    if (key.str() != "model") {
      throw Error(ErrorCode::kInvalidInput,
                  origin + ":" + std::to_string(node.source().begin.line) + ": unknown key '" +
                      std::string(key.str()) + "'; a models file holds [[model]] tables",
                  std::string(key.str()));
    }
  }
  const toml::node* models = root.get("model");
  const toml::array* list = models != nullptr ? models->as_array() : nullptr;
  if (models != nullptr && list == nullptr) {
    throw Error(ErrorCode::kInvalidInput,
                origin + ":" + std::to_string(models->source().begin.line) +
                    ": 'model' must be a list of tables ([[model]])",
                "model");
  }
  if (list == nullptr || list->empty()) {
    throw Error(ErrorCode::kInvalidInput, origin + ": no [[model]] tables", "model");
  }
  std::vector<ModelSpec> specs;
  for (const auto& item : *list) {
    const auto* table = item.as_table();
    if (table == nullptr) {
      throw Error(ErrorCode::kInvalidInput,
                  origin + ":" + std::to_string(item.source().begin.line) +
                      ": 'model' must be a list of tables ([[model]])",
                  "model");
    }
    specs.push_back(read_model(*table, origin, base_dir, defaults));
  }
  check_model_names(specs, origin);
  return specs;
}

std::vector<ModelSpec> parse_models_file(const std::string& path, const ModelSpec& defaults) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kNotFound, "models file not found: " + path, "--models");
  }
  std::ostringstream text;
  text << in.rdbuf();
  const auto base = std::filesystem::absolute(path).parent_path().string();
  return parse_models_text(text.str(), path, base, defaults);
}

void check_model_names(const std::vector<ModelSpec>& specs, const std::string& origin) {
  if (specs.empty()) {
    throw Error(ErrorCode::kInvalidInput, origin + ": no models", "model");
  }
  std::set<std::string, std::less<>> seen;
  for (const auto& spec : specs) {
    std::vector<std::string> names = spec.aliases;
    names.insert(names.begin(), spec.name);
    for (const auto& n : names) {
      if (!seen.insert(n).second) {
        std::string message = origin;
        message.append(": the model name '")
            .append(n)
            .append("' is used twice (names and aliases must be unique)");
        throw Error(ErrorCode::kInvalidInput, message, "name");
      }
    }
  }
}

}  // namespace mmserve::runtime
