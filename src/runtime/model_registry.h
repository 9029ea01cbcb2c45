// The models a server serves, by name: several loaded at once, each with its own scheduler.
//
// A request asks for a lease (acquire) on the model that serves its task, by the name or alias
// in its `model` field, or the task's default (the first model of its kind). A model that is
// not loaded is loaded then, in the requesting thread, while other models keep serving; other
// requests for the same model wait for that load. Before a load, the memory budget
// (max_memory_bytes, max_models) is made room for by unloading the least recently used models
// that are idle and not pinned; if the busy and pinned ones leave no room, the request gets
// Error(kBusy). Unloading drops the registry's reference only: a lease keeps its model alive
// (and serving the request that holds it) until it is released.
//
// Models may also be registered and unregistered while the server runs (the admin endpoints
// POST /models/register and /models/unregister): a fine-tuned model served beside the current
// one without a restart. An unregistered model's name stops answering at once; the requests
// that hold it finish on it.
//
// Threading: every method is thread-safe. One mutex guards the table; loads run outside it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/thread_annotations.h"
#include "runtime/model_spec.h"
#include "runtime/served_model.h"

namespace mmserve::runtime {

using ModelLease = std::shared_ptr<ServedModel>;

struct RegistryOptions {
  int64_t max_memory_bytes = 0;  // 0 = no memory budget
  int32_t max_models = 0;        // 0 = no count budget
  int32_t queue_size = 64;
  int32_t threads = 0;  // --threads: the budget split between text and speech (runtime.h)
  int32_t speech_threads = 0;
  int32_t speech_window_threads = 2;  // --speech-window-threads: the least threads per window
  bool speech_fallback = true;        // false: --no-speech-fallback
  // Single-model servers (the -m/--whisper-model flags): a name that matches no model selects
  // the task's default, as llama-server answers to any name. A models file sets it false, and
  // unknown names get Error(kNotFound).
  bool unknown_names_use_default = false;
  // What a model registered at run time gets for the settings its request does not give (the
  // command line's -np, -c, -b, --speech-parallel).
  ModelSpec registration_defaults;
};

// What GET /v1/models and the admin endpoints show of a model (no file paths).
struct ModelStatus {
  ModelSpec spec;
  ModelLease model;  // loaded (its memory, load time, engines); null when not
  bool loading = false;
  bool busy = false;       // requests hold it or wait on it (this status's lease aside)
  std::string last_error;  // why the last load failed; empty when it did not
  uint64_t loads = 0, unloads = 0;
};

// How a model is loaded; tests may replace it.
using ModelLoader = std::function<ModelLease(const ModelSpec&, const LoadSettings&)>;

// Called after each load and unload (for the log and the metrics), outside the lock.
struct ModelEvent {
  enum class Kind { kLoaded, kUnloaded, kLoadFailed } kind;
  std::string model;
  std::string reason;  // unload: "budget", "admin", "shutdown"; failure: the error
  double seconds = 0;  // load time
  int64_t memory_bytes = 0;
};
using ModelEventObserver = std::function<void(const ModelEvent&)>;

class ModelRegistry {
 public:
  // Throws Error(kInvalidInput) on duplicate names (check_model_names).
  ModelRegistry(std::vector<ModelSpec> specs, RegistryOptions options, ModelLoader loader = {});
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // A lease on the model named `name` (or an alias; empty: the task's default) that serves
  // `task`, loading it if needed. Throws Error: kNotFound (no such model; the message lists
  // them), kModelUnavailable (no model for the task, or this model does not serve it),
  // kBusy (no room in the budget), kUnavailable (stopped), or the load's own error.
  ModelLease acquire(Task task, std::string_view name);
  // The same by name only, whatever the model serves (admin load).
  ModelLease acquire_named(std::string_view name);
  // Drops the registry's reference (admin unload): Error(kNotFound) for an unknown name.
  struct Unloaded {
    bool unloaded = false;  // false: it was not loaded
    bool in_use = false;    // requests still hold it: freed when the last one ends
  };
  Unloaded unload(std::string_view name, const std::string& reason = "admin");
  // Loads every model marked preload, in order, while they fit in the budget without unloading
  // each other (the rest load at their first request); throws the first load error, and
  // Error(kBusy) for a pinned model that does not fit.
  void preload();

  // Adds a model (admin register): Error(kInvalidInput, "name") when its name or an alias is
  // taken. With `load`, it is loaded now, and a failed load takes the registration back (the
  // load's error is thrown). Returns its status.
  ModelStatus register_model(ModelSpec spec, bool load);
  // Removes a model (admin unregister): unloaded as by unload(), and its name no longer answers.
  // Error(kNotFound) for an unknown name; Error(kBusy) while it is loading.
  Unloaded unregister_model(std::string_view name);

  std::vector<ModelStatus> list() const;
  // The spec of the model named `name` (or an alias); Error(kNotFound) listing the names.
  ModelSpec spec(std::string_view name) const;
  // Leases on the loaded models (health, metrics, drain).
  std::vector<ModelLease> loaded() const;
  bool serves(Task task) const;  // some model of this server does
  // The models registered now, in order (a snapshot: registrations may change it later).
  std::vector<ModelSpec> specs() const;
  const RegistryOptions& options() const { return options_; }
  void set_observer(ModelEventObserver observer);

  // Shutdown: no more loads; every loaded model stops accepting / is cancelled.
  void stop_accepting();
  void cancel_all();

 private:
  struct Entry {
    ModelSpec spec;
    ModelLease model;  // loaded; null when not
    bool loading = false;
    std::chrono::steady_clock::time_point last_used{};
    int64_t reserved_bytes = 0;  // while loading: its estimate, counted against the budget
    std::string last_error;
    ErrorCode last_error_code = ErrorCode::kInternal;
    uint64_t loads = 0, unloads = 0, failures = 0;
    bool removed = false;  // unregistered: kept so that references to entries stay valid
  };

  // By name or alias: null when none; find_locked throws Error(kNotFound) listing the names.
  Entry* entry_named_locked(std::string_view name) REQUIRES(mutex_);
  Entry& find_locked(std::string_view name) REQUIRES(mutex_);
  Error not_found_locked(std::string_view name) const REQUIRES(mutex_);
  Entry* default_for_locked(Task task) REQUIRES(mutex_);
  // Returns the entry's model, waiting for or running its load (which releases mutex_ while it
  // reads files and loads, and holds it again when it returns or throws).
  ModelLease lease_locked(Entry& entry, bool may_evict) REQUIRES(mutex_);
  // Unloads idle, unpinned models (when `may_evict`), least recently used first, until
  // `incoming` more bytes and one more model fit, else throws Error(kBusy) having unloaded
  // nothing; returns the unloaded ones (destroyed by the caller, outside the lock).
  std::vector<ModelLease> make_room_locked(const Entry& incoming, int64_t incoming_bytes,
                                           bool may_evict) REQUIRES(mutex_);
  ModelStatus status_locked(const Entry& entry) const REQUIRES(mutex_);
  // unload() and unregister_model(): the latter also marks the entry removed.
  Unloaded unload_entry(std::string_view name, const std::string& reason, bool unregister);
  LoadSettings settings_for(const ModelSpec& spec) const;
  void notify(const ModelEvent& event) const;

  const RegistryOptions options_;
  // Every thread of --threads, lent to whichever models have work (text and speech).
  const std::shared_ptr<scheduler::CpuShare> cpu_share_;
  ModelLoader loader_;
  mutable Mutex mutex_;
  CondVar loaded_cv_;
  // A deque: registering appends without moving the others (lease_locked holds a reference
  // across its unlocked load); unregistering marks an entry removed.
  std::deque<Entry> entries_ GUARDED_BY(mutex_);
  std::vector<std::weak_ptr<ServedModel>> retired_ GUARDED_BY(mutex_);  // maybe still leased
  bool stopped_ GUARDED_BY(mutex_) = false;
  ModelEventObserver observer_;  // set before serving
};

// "8G", "512M", "1.5G", "1000000": bytes (K, M, G, T: powers of 1024). Error(kInvalidInput,
// field) otherwise.
int64_t parse_byte_size(const std::string& text, const std::string& field);

}  // namespace mmserve::runtime
