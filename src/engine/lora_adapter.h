// LoRA adapters for a loaded text model, and the set of them one request runs with.
//
// A LoraAdapter is a GGUF adapter (llama.cpp's convert_lora_to_gguf.py, or `mmserve synth
// lora`) loaded against one TextModel with llama_adapter_lora_init. libllama applies adapters
// per llama_context (llama_set_adapters_lora), so TextBatch decodes the sequences of one
// LoraSet per step and switches the context's set between steps (text_batch.h).
//
// Ownership: a LoraAdapter owns its llama_adapter_lora and holds its TextModel (libllama frees
// an adapter's tensors with the model, so the model must outlive it); it is shared_ptr-owned,
// and a request, a TextBatch context or an idle cache that uses it keeps it alive after it is
// unloaded from a model's table. Threading: immutable after load; any thread may read it.
// LoraSet is a value type (copy per request).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_annotations.h"
#include "engine/text_model.h"

struct llama_adapter_lora;

namespace mmserve::engine {

class LoraAdapter {
 public:
  // Loads `path` against `model`. `name` is what requests call it ("base:name"): 1 to 64
  // characters of [A-Za-z0-9._-]. Throws Error: kInvalidInput naming "name" or "scale" (not
  // finite, or outside [-16, 16]), kNotFound naming "path" (no such file), kModelLoad naming
  // "path" (not a LoRA GGUF for this model's architecture and shapes, or an activated LoRA,
  // which mmserve does not serve).
  static std::shared_ptr<const LoraAdapter> load(std::shared_ptr<const TextModel> model,
                                                 std::string name, std::string path,
                                                 float default_scale = 1.0F);
  ~LoraAdapter();
  LoraAdapter(const LoraAdapter&) = delete;
  LoraAdapter& operator=(const LoraAdapter&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  float default_scale() const { return default_scale_; }
  // Unique per load in this process (never reused), so caches can tell loads apart without
  // holding them.
  uint64_t serial() const { return serial_; }
  const TextModel& model() const { return *model_; }
  // For llama_set_adapters_lora (which takes non-const pointers but only reads them).
  llama_adapter_lora* raw() const { return adapter_; }
  // The adapter file's general.name, or "" when it has none.
  const std::string& file_name() const { return file_name_; }

  // Checks a scale given by a request or a spec: finite and within [-16, 16]. Throws
  // Error(kInvalidInput, field).
  static void check_scale(float scale, const char* field);
  // Checks an adapter name (see load). Throws Error(kInvalidInput, field).
  static void check_name(const std::string& name, const char* field);

 private:
  LoraAdapter() = default;
  std::shared_ptr<const TextModel> model_;
  llama_adapter_lora* adapter_ = nullptr;
  std::string name_;
  std::string path_;
  std::string file_name_;
  float default_scale_ = 1.0F;
  uint64_t serial_ = 0;
};

// libllama keeps a model's adapters in a set that loading and freeing an adapter change and that
// a context reads when it rebuilds its graph (the first decode after llama_set_adapters_lora
// changed its adapters). This lock, one per model, orders the two: LoraAdapter's load and
// destruction hold it, and so does TextBatch around a decode that follows an adapter switch.
// Never held across anything else.
Mutex& adapter_lock(const TextModel& model);

// A request's reference to an adapter, by name or by its index in the model's list
// (llama-server's {"id": N}), as the edge parsed it; the executor resolves it on the model's
// table (runtime/lora_table.h) into the request's LoraSet.
struct LoraRef {
  std::string name;            // empty: by index
  int32_t index = -1;          // by index when name is empty
  std::optional<float> scale;  // unset: the adapter's default scale
  std::string field;           // what errors about it name: "model", "lora", "lora[1].id"
};

// One adapter at a scale.
struct LoraUse {
  std::shared_ptr<const LoraAdapter> adapter;
  float scale = 1.0F;
};

// The adapters a request runs with; empty is the base model. Canonical: zero scales dropped,
// ordered by serial, one entry per adapter (a repeated adapter is refused by the caller).
class LoraSet {
 public:
  using Key = std::vector<std::pair<uint64_t, float>>;  // (serial, scale), in order

  LoraSet() = default;
  explicit LoraSet(std::vector<LoraUse> uses);

  bool empty() const { return uses_.empty(); }
  const std::vector<LoraUse>& uses() const { return uses_; }
  // What identifies the set for KV reuse and for grouping decodes; holds no adapter.
  const Key& key() const { return key_; }
  bool same_as(const LoraSet& other) const { return key_ == other.key_; }
  bool same_as(const Key& key) const { return key_ == key; }
  // "" for the base; else the names joined by '+', each with "*scale" when it is not the
  // adapter's default scale: "a", "a*0.5+b".
  std::string label() const;

 private:
  std::vector<LoraUse> uses_;
  Key key_;
};

}  // namespace mmserve::engine
