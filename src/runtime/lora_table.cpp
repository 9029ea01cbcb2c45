#include "runtime/lora_table.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "runtime/model_registry.h"

namespace mmserve::runtime {
namespace {

bool names_a_model(const ModelRegistry& registry, std::string_view name) {
  try {
    (void)registry.spec(name);
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return false;
    throw;
  }
}

// A whole string as a float, or nullopt.
std::optional<float> read_float(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const float v = std::strtof(text.c_str(), &end);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

}  // namespace

LoraSpec parse_lora_spec(const std::string& text, const std::string& field) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw Error(ErrorCode::kInvalidInput,
                "'" + field +
                    "' takes NAME=FILE[:SCALE] (e.g. support=adapters/support.gguf:0.8), "
                    "not '" +
                    text + "'",
                field);
  }
  LoraSpec spec;
  spec.name = text.substr(0, eq);
  spec.path = text.substr(eq + 1);
  if (const auto colon = spec.path.rfind(':'); colon != std::string::npos) {
    if (const auto scale = read_float(spec.path.substr(colon + 1))) {
      spec.scale = *scale;
      spec.path.resize(colon);
    }
  }
  if (spec.path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "'" + field + "' " + text + ": the file is empty", field);
  }
  try {
    engine::LoraAdapter::check_name(spec.name, "name");
    engine::LoraAdapter::check_scale(spec.scale, "scale");
  } catch (const Error& e) {
    throw Error(e.code(), "'" + field + "' " + text + ": " + e.what(), field);
  }
  return spec;
}

std::optional<std::pair<std::string, std::string>> split_adapter_model(
    const ModelRegistry& registry, std::string_view model) {
  const auto colon = model.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == model.size()) {
    return std::nullopt;
  }
  if (names_a_model(registry, model)) return std::nullopt;
  const std::string_view base = model.substr(0, colon);
  if (!names_a_model(registry, base)) return std::nullopt;
  return std::make_pair(std::string(base), std::string(model.substr(colon + 1)));
}

std::shared_ptr<const engine::LoraAdapter> LoraTable::load(const LoraSpec& spec) {
  engine::LoraAdapter::check_name(spec.name, "name");
  {
    MutexLock lock(mutex_);
    const bool taken =
        std::ranges::any_of(adapters_, [&](const auto& a) { return a->name() == spec.name; }) ||
        loading_.contains(spec.name);
    if (taken) {
      throw Error(ErrorCode::kInvalidInput,
                  "model '" + model_name_ + "' already has an adapter named '" + spec.name +
                      "' (unload it first)",
                  "name");
    }
    loading_.insert(spec.name);
  }
  std::shared_ptr<const engine::LoraAdapter> adapter;
  try {
    adapter = engine::LoraAdapter::load(model_, spec.name, spec.path, spec.scale);
  } catch (...) {
    MutexLock lock(mutex_);
    loading_.erase(spec.name);
    throw;
  }
  MutexLock lock(mutex_);
  loading_.erase(spec.name);
  adapters_.push_back(adapter);
  return adapter;
}

void LoraTable::unload(std::string_view name) {
  std::shared_ptr<const engine::LoraAdapter> removed;  // freed outside the lock
  MutexLock lock(mutex_);
  const auto it = std::ranges::find_if(adapters_, [&](const auto& a) { return a->name() == name; });
  if (it == adapters_.end()) {
    throw Error(ErrorCode::kNotFound,
                "model '" + model_name_ + "' has no adapter '" + std::string(name) +
                    "' (adapters: " + names_locked() + ")",
                "name");
  }
  removed = std::move(*it);
  adapters_.erase(it);
  lock.unlock();
}

std::shared_ptr<const engine::LoraAdapter> LoraTable::find(std::string_view name) const {
  MutexLock lock(mutex_);
  for (const auto& a : adapters_) {
    if (a->name() == name) return a;
  }
  return nullptr;
}

std::vector<std::shared_ptr<const engine::LoraAdapter>> LoraTable::list() const {
  MutexLock lock(mutex_);
  return adapters_;
}

std::string LoraTable::names_locked() const {
  std::string out;
  for (const auto& a : adapters_) out += (out.empty() ? "" : ", ") + a->name();
  return out.empty() ? "none" : out;
}

engine::LoraSet LoraTable::resolve(const std::vector<engine::LoraRef>& refs) const {
  if (refs.empty()) return {};
  std::vector<engine::LoraUse> uses;
  MutexLock lock(mutex_);
  for (const auto& ref : refs) {
    std::shared_ptr<const engine::LoraAdapter> adapter;
    if (!ref.name.empty()) {
      for (const auto& a : adapters_) {
        if (a->name() == ref.name) adapter = a;
      }
      if (!adapter) {
        throw Error(ErrorCode::kNotFound,
                    "model '" + model_name_ + "' has no adapter '" + ref.name +
                        "' (adapters: " + names_locked() + ")",
                    ref.field);
      }
    } else {
      if (ref.index < 0 || static_cast<size_t>(ref.index) >= adapters_.size()) {
        throw Error(ErrorCode::kNotFound,
                    "model '" + model_name_ + "' has no adapter with id " +
                        std::to_string(ref.index) + " (it has " + std::to_string(adapters_.size()) +
                        ": " + names_locked() + ")",
                    ref.field);
      }
      adapter = adapters_[static_cast<size_t>(ref.index)];
    }
    const float scale = ref.scale.value_or(adapter->default_scale());
    engine::LoraAdapter::check_scale(scale, ref.field.c_str());
    if (std::ranges::any_of(uses, [&](const auto& u) { return u.adapter == adapter; })) {
      throw Error(ErrorCode::kInvalidInput, "adapter '" + adapter->name() + "' is asked for twice",
                  ref.field);
    }
    uses.push_back({std::move(adapter), scale});
  }
  return engine::LoraSet(std::move(uses));
}

}  // namespace mmserve::runtime
