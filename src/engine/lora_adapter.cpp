#include "engine/lora_adapter.h"

#include <llama.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "engine/backend.h"

namespace mmserve::engine {
namespace {

std::atomic<uint64_t> g_next_serial{1};

struct LockTable {
  Mutex mutex;
  // One lock per model ever used with adapters; never removed, so references stay valid (a
  // model freed and another loaded at the same address shares its lock, which is harmless).
  std::map<const TextModel*, std::unique_ptr<Mutex>> locks GUARDED_BY(mutex);
};

std::string scale_text(float scale) {
  std::ostringstream out;
  out << scale;
  return out.str();
}

}  // namespace

Mutex& adapter_lock(const TextModel& model) {
  static LockTable table;
  MutexLock lock(table.mutex);
  auto& slot = table.locks[&model];
  if (!slot) slot = std::make_unique<Mutex>();
  return *slot;
}

void LoraAdapter::check_scale(float scale, const char* field) {
  if (!std::isfinite(scale) || scale < -16.0F || scale > 16.0F) {
    throw Error(ErrorCode::kInvalidInput,
                "the adapter scale must be a finite number within [-16, 16]", field);
  }
}

void LoraAdapter::check_name(const std::string& name, const char* field) {
  const bool ok = !name.empty() && name.size() <= 64 && std::ranges::all_of(name, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
  if (!ok) {
    throw Error(
        ErrorCode::kInvalidInput,
        "an adapter name is 1 to 64 characters of letters, digits, '.', '_' and '-' (got '" +
            name.substr(0, 80) + "')",
        field);
  }
}

std::shared_ptr<const LoraAdapter> LoraAdapter::load(std::shared_ptr<const TextModel> model,
                                                     std::string name, std::string path,
                                                     float default_scale) {
  check_name(name, "name");
  check_scale(default_scale, "scale");
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, "no adapter file at '" + path + "'", "path");
  }
  ensure_backend_initialized();
  clear_recent_engine_errors();
  llama_adapter_lora* raw = nullptr;
  {
    MutexLock lock(adapter_lock(*model));
    raw = llama_adapter_lora_init(model->raw(), path.c_str());
  }
  if (raw == nullptr) {
    const std::string why = recent_engine_errors();
    throw Error(ErrorCode::kModelLoad,
                "cannot load '" + path + "' as a LoRA adapter of model " + model->id() +
                    (why.empty() ? std::string() : ": " + why),
                "path");
  }
  if (llama_adapter_get_alora_n_invocation_tokens(raw) > 0) {
    {
      MutexLock lock(adapter_lock(*model));
      llama_adapter_lora_free(raw);
    }
    throw Error(ErrorCode::kModelLoad,
                "'" + path + "' is an activated LoRA (aLoRA), which mmserve does not serve",
                "path");
  }
  std::shared_ptr<LoraAdapter> adapter(new LoraAdapter());
  adapter->model_ = std::move(model);
  adapter->adapter_ = raw;
  adapter->name_ = std::move(name);
  adapter->path_ = std::move(path);
  adapter->default_scale_ = default_scale;
  adapter->serial_ = g_next_serial.fetch_add(1);
  char buf[256];
  if (llama_adapter_meta_val_str(raw, "general.name", buf, sizeof(buf)) > 0) {
    adapter->file_name_ = buf;
  }
  return adapter;
}

LoraAdapter::~LoraAdapter() {
  // Before model_ is released: libllama frees an adapter's tensors with its model otherwise.
  if (adapter_ != nullptr) {
    MutexLock lock(adapter_lock(*model_));
    llama_adapter_lora_free(adapter_);
  }
}

LoraSet::LoraSet(std::vector<LoraUse> uses) {
  std::erase_if(uses, [](const LoraUse& u) { return u.adapter == nullptr || u.scale == 0.0F; });
  std::ranges::sort(uses, [](const LoraUse& a, const LoraUse& b) {
    return a.adapter->serial() < b.adapter->serial();
  });
  uses_ = std::move(uses);
  key_.reserve(uses_.size());
  for (const auto& u : uses_) key_.emplace_back(u.adapter->serial(), u.scale);
}

std::string LoraSet::label() const {
  std::string out;
  for (const auto& u : uses_) {
    if (!out.empty()) out += '+';
    out += u.adapter->name();
    if (u.scale != u.adapter->default_scale()) out += "*" + scale_text(u.scale);
  }
  return out;
}

}  // namespace mmserve::engine
