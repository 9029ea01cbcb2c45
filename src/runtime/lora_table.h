// The LoRA adapters a served text model offers, by name: those of its spec (--lora, the models
// file's `lora`), loaded with the model, and those loaded and unloaded while it serves (POST
// /models/adapters/load and /unload). A request names them as "MODEL:ADAPTER" or with a `lora`
// parameter; resolve() turns its references into the set it runs with (engine::LoraSet).
//
// Unloading removes an adapter from the table only: requests that resolved it hold it and
// finish with it (engine/lora_adapter.h), new ones get Error(kNotFound). Adapters loaded at run
// time live as long as the loaded model: when the registry unloads the model (admin, budget),
// only its spec's adapters come back with it.
//
// Ownership: owned by its ServedModel; holds the model's TextModel. Threading: every method is
// thread-safe; loads run outside the lock.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/thread_annotations.h"
#include "engine/lora_adapter.h"
#include "runtime/model_spec.h"

namespace mmserve::runtime {

class ModelRegistry;

// "name=FILE[:scale]" (serve --lora, the models file's strings): the scale is what follows the
// last ':' when it reads as a number, else the ':' is part of the path. Throws
// Error(kInvalidInput, field) for a missing '=', an empty name or path, a bad name or scale.
LoraSpec parse_lora_spec(const std::string& text, const std::string& field);

// "base:adapter" when `model` is not itself the name or alias of a served model and the part
// before its last ':' is (models may be named "llama3:8b"): {base, adapter}. Else nullopt.
std::optional<std::pair<std::string, std::string>> split_adapter_model(
    const ModelRegistry& registry, std::string_view model);

class LoraTable {
 public:
  LoraTable(std::shared_ptr<const engine::TextModel> model, std::string model_name)
      : model_(std::move(model)), model_name_(std::move(model_name)) {}

  // Loads spec.path against the model and adds it. Throws Error(kInvalidInput, "name") when
  // the name is taken (or being loaded), and engine::LoraAdapter::load's errors (fields "name",
  // "path", "scale").
  std::shared_ptr<const engine::LoraAdapter> load(const LoraSpec& spec);
  // Removes the adapter named `name`: Error(kNotFound, "name") when there is none.
  void unload(std::string_view name);
  // Null when there is none.
  std::shared_ptr<const engine::LoraAdapter> find(std::string_view name) const;
  // In load order: index i is llama-server's {"id": i}.
  std::vector<std::shared_ptr<const engine::LoraAdapter>> list() const;

  // The set `refs` asks for. Throws Error naming the reference's field: kNotFound (no adapter
  // by that name or index; the message lists them), kInvalidInput (a bad scale, the same
  // adapter twice).
  engine::LoraSet resolve(const std::vector<engine::LoraRef>& refs) const;

 private:
  const std::shared_ptr<const engine::TextModel> model_;
  const std::string model_name_;
  mutable Mutex mutex_;
  std::vector<std::shared_ptr<const engine::LoraAdapter>> adapters_ GUARDED_BY(mutex_);
  std::set<std::string, std::less<>> loading_ GUARDED_BY(mutex_);
  std::string names_locked() const REQUIRES(mutex_);
};

}  // namespace mmserve::runtime
