#include "runtime/model_registry.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "engine/text_model.h"
#include "runtime/models_file.h"

namespace mmserve::runtime {
namespace {

std::string mib(int64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}

// The error for a task no model of this server serves, as single-model servers always said it.
Error no_model_for(Task task) {
  switch (task) {
    case Task::kTextGen:
      return {
          ErrorCode::kModelUnavailable,
          "this server has no text model (it serves speech or embeddings only; start it with -m "
          "MODEL.gguf for text)",
          "task"};
    case Task::kImageCaption:
      return {ErrorCode::kModelUnavailable,
              "task 'image-caption' needs a vision model and projector (--mmproj), which "
              "this server has not loaded",
              "task"};
    case Task::kSpeechTranscribe:
      return {ErrorCode::kModelUnavailable,
              "task 'speech-transcribe' needs a speech model (--whisper-model), which this "
              "server has not loaded",
              "task"};
    case Task::kEmbed:
      return {ErrorCode::kModelUnavailable,
              "task 'embed' needs an embedding model (-m EMBEDDING.gguf or --embedding-model), "
              "which this server has not loaded",
              "model"};
  }
  return {ErrorCode::kInternal, "unknown task"};
}

}  // namespace

ModelRegistry::ModelRegistry(std::vector<ModelSpec> specs, RegistryOptions options,
                             ModelLoader loader)
    : options_(std::move(options)),
      cpu_share_(std::make_shared<scheduler::CpuShare>(
          options_.threads > 0 ? options_.threads : engine::default_thread_count())),
      loader_(std::move(loader)) {
  check_model_names(specs, "models");
  if (!loader_) {
    loader_ = &ServedModel::load;
  }
  MutexLock lock(mutex_);
  for (auto& spec : specs) {
    entries_.push_back(Entry{.spec = std::move(spec)});
  }
}

ModelRegistry::~ModelRegistry() {
  std::vector<ModelLease> models;
  {
    MutexLock lock(mutex_);
    stopped_ = true;
    for (auto& e : entries_) {
      models.push_back(std::move(e.model));
    }
  }
  models.clear();  // outside the lock: destruction joins scheduler threads
}

void ModelRegistry::set_observer(ModelEventObserver observer) {
  observer_ = std::move(observer);
}

void ModelRegistry::notify(const ModelEvent& event) const {
  if (observer_) {
    observer_(event);
  }
}

Error ModelRegistry::not_found_locked(std::string_view name) const {
  std::string names;
  for (const auto& e : entries_) {
    if (!e.removed) {
      names += (names.empty() ? "" : ", ") + e.spec.name;
    }
  }
  return {ErrorCode::kNotFound,
          "the model '" + std::string(name) + "' does not exist; this server has: " + names,
          "model"};
}

ModelRegistry::Entry* ModelRegistry::entry_named_locked(std::string_view name) {
  for (auto& e : entries_) {
    if (!e.removed && e.spec.answers_to(name)) {
      return &e;
    }
  }
  return nullptr;
}

ModelRegistry::Entry& ModelRegistry::find_locked(std::string_view name) {
  if (Entry* e = entry_named_locked(name)) {
    return *e;
  }
  throw not_found_locked(name);
}

ModelSpec ModelRegistry::spec(std::string_view name) const {
  MutexLock lock(mutex_);
  for (const auto& e : entries_) {
    if (!e.removed && e.spec.answers_to(name)) {
      return e.spec;
    }
  }
  throw not_found_locked(name);
}

std::vector<ModelSpec> ModelRegistry::specs() const {
  MutexLock lock(mutex_);
  std::vector<ModelSpec> out;
  for (const auto& e : entries_) {
    if (!e.removed) {
      out.push_back(e.spec);
    }
  }
  return out;
}

ModelRegistry::Entry* ModelRegistry::default_for_locked(Task task) {
  for (auto& e : entries_) {
    if (!e.removed && e.spec.serves(task)) {
      return &e;
    }
  }
  return nullptr;
}

bool ModelRegistry::serves(Task task) const {
  MutexLock lock(mutex_);
  return std::any_of(entries_.begin(), entries_.end(),
                     [task](const Entry& e) { return !e.removed && e.spec.serves(task); });
}

LoadSettings ModelRegistry::settings_for(const ModelSpec& spec) const {
  const bool text = serves(Task::kTextGen);
  const bool speech = serves(Task::kSpeechTranscribe);
  const int32_t total = cpu_share_->total();
  const int32_t speech_share =
      options_.speech_threads > 0 ? options_.speech_threads : std::max(1, total / 2);
  LoadSettings s{.threads = 0,
                 .queue_size = options_.queue_size,
                 .speech_window_threads = options_.speech_window_threads,
                 .speech_fallback = options_.speech_fallback};
  // `threads` is each model's share while another has work; text and speech models take every
  // thread while alone (cpu_share.h). Embedding models keep a fixed count, and so does speech
  // on a server without a text model when --speech-threads names one.
  if (spec.kind == ModelKind::kSpeech) {
    s.threads =
        text ? speech_share : (options_.speech_threads > 0 ? options_.speech_threads : total);
    if (text || options_.speech_threads <= 0) s.cpu_share = cpu_share_;
  } else {
    s.threads = speech ? std::max(1, total - speech_share) : total;
    if (spec.kind != ModelKind::kEmbedding) s.cpu_share = cpu_share_;
  }
  return s;
}

ModelLease ModelRegistry::acquire(Task task, std::string_view name) {
  MutexLock lock(mutex_);
  Entry* entry = nullptr;
  if (!name.empty()) {
    entry = options_.unknown_names_use_default ? entry_named_locked(name) : &find_locked(name);
  }
  if (entry == nullptr) {
    entry = default_for_locked(task);
  }
  if (entry == nullptr) {
    throw no_model_for(task);
  }
  if (!entry->spec.serves(task)) {
    const char* why = entry->spec.kind == ModelKind::kSpeech      ? "a speech model"
                      : entry->spec.kind == ModelKind::kEmbedding ? "an embedding model"
                      : task == Task::kImageCaption ? "a text model without a projector"
                                                    : "a text model";
    throw Error(ErrorCode::kModelUnavailable,
                "the model '" + entry->spec.name + "' is " + why + "; it does not serve task '" +
                    task_name(task) + "'",
                "model");
  }
  return lease_locked(*entry, /*may_evict=*/true);
}

ModelLease ModelRegistry::acquire_named(std::string_view name) {
  MutexLock lock(mutex_);
  return lease_locked(find_locked(name), /*may_evict=*/true);
}

ModelLease ModelRegistry::lease_locked(Entry& entry, bool may_evict) {
  const uint64_t failures_before = entry.failures;
  while (true) {
    if (stopped_) {
      throw Error(ErrorCode::kUnavailable, "the server is shutting down");
    }
    if (entry.model) {
      entry.last_used = std::chrono::steady_clock::now();
      return entry.model;
    }
    if (!entry.loading) {
      break;
    }
    loaded_cv_.wait(mutex_);
    if (entry.failures != failures_before && !entry.model) {
      // The load this request waited for failed: it gets the same answer (429 for no room).
      throw Error(entry.last_error_code, "the model '" + entry.spec.name + "': " + entry.last_error,
                  "model");
    }
  }
  // This thread loads it; the others asking for it wait on loaded_cv_.
  entry.loading = true;
  const ModelSpec spec = entry.spec;
  std::vector<ModelLease> evicted;
  int64_t bytes = 0;
  ModelEvent failure{.kind = ModelEvent::Kind::kLoadFailed, .model = spec.name};
  // Each MutexUnlock scope below runs without mutex_ and takes it back when it ends, also when
  // it throws: the handler below always runs with mutex_ held.
  ModelLease model;
  try {
    {
      MutexUnlock unlocked(mutex_);
      bytes = estimate_model_bytes(spec);  // reads file headers: outside the lock
    }
    entry.reserved_bytes = bytes;
    evicted = make_room_locked(entry, bytes, may_evict);
    {
      MutexUnlock unlocked(mutex_);
      for (const auto& m : evicted) {
        notify({.kind = ModelEvent::Kind::kUnloaded,
                .model = m->name(),
                .reason = "budget",
                .memory_bytes = m->memory_bytes()});
      }
      evicted.clear();  // destroyed here, outside the lock
      LoadSettings settings = settings_for(spec);
      settings.memory_bytes = bytes;  // the budget's figure is the model's, not a second estimate
      model = loader_(spec, settings);
    }
    entry.model = model;
    entry.loading = false;
    entry.reserved_bytes = 0;
    entry.last_error.clear();
    entry.loads++;
    entry.last_used = std::chrono::steady_clock::now();
    if (stopped_) {
      model->stop_accepting();
    }
    loaded_cv_.notify_all();
    {
      MutexUnlock unlocked(mutex_);
      notify({.kind = ModelEvent::Kind::kLoaded,
              .model = spec.name,
              .seconds = model->load_seconds(),
              .memory_bytes = model->memory_bytes()});
    }
    return model;
  } catch (const std::exception& e) {
    entry.loading = false;
    entry.reserved_bytes = 0;
    entry.last_error = e.what();
    const auto* typed = dynamic_cast<const Error*>(&e);
    entry.last_error_code = typed != nullptr ? typed->code() : ErrorCode::kInternal;
    entry.failures++;
    loaded_cv_.notify_all();
    failure.reason = e.what();
    {
      MutexUnlock unlocked(mutex_);
      evicted.clear();
      notify(failure);
    }
    throw;
  }
}

std::vector<ModelLease> ModelRegistry::make_room_locked(const Entry& incoming,
                                                        int64_t incoming_bytes, bool may_evict) {
  // Unloaded models that a request still holds take their memory until it ends.
  std::erase_if(retired_, [](const std::weak_ptr<ServedModel>& w) { return w.expired(); });
  // Called below with mutex_ held; the annotation lets the analysis check the lambda's body.
  const auto in_use = [&]() REQUIRES(mutex_) {
    int64_t bytes = 0;
    int32_t count = 0;
    for (const auto& e : entries_) {
      if (&e == &incoming) {
        continue;
      }
      if (e.model) {
        bytes += e.model->memory_bytes();
        ++count;
      } else if (e.loading) {
        bytes += e.reserved_bytes;
        ++count;
      }
    }
    for (const auto& w : retired_) {
      if (const auto m = w.lock()) {
        bytes += m->memory_bytes();
        ++count;
      }
    }
    return std::pair{bytes, count};
  };
  if (options_.max_memory_bytes > 0 && incoming_bytes > options_.max_memory_bytes) {
    throw Error(ErrorCode::kModelLoad,
                "the model '" + incoming.spec.name + "' needs about " + mib(incoming_bytes) +
                    ", more than the whole memory budget (--max-memory " +
                    mib(options_.max_memory_bytes) + ")",
                "model");
  }
  // Candidates: idle (no request holds a lease: the registry's is the only one; nothing queued)
  // and not pinned, least recently used first. Nothing is unloaded unless it makes enough room.
  std::vector<Entry*> idle;
  for (auto& e : entries_) {
    if (!may_evict || &e == &incoming || !e.model || e.spec.pinned) {
      continue;
    }
    if (e.model.use_count() == 1 && !e.model->busy()) {
      idle.push_back(&e);
    }
  }
  std::sort(idle.begin(), idle.end(),
            [](const Entry* a, const Entry* b) { return a->last_used < b->last_used; });
  const auto used = in_use();
  int64_t bytes = used.first;
  int32_t count = used.second;
  size_t victims = 0;
  const auto fits = [&] {
    return (options_.max_memory_bytes <= 0 ||
            bytes + incoming_bytes <= options_.max_memory_bytes) &&
           (options_.max_models <= 0 || count + 1 <= options_.max_models);
  };
  while (!fits() && victims < idle.size()) {
    bytes -= idle[victims]->model->memory_bytes();
    --count;
    ++victims;
  }
  if (!fits()) {
    std::string held;
    for (const auto& e : entries_) {
      if ((e.model || e.loading) && &e != &incoming) {
        held += (held.empty() ? "" : ", ") + e.spec.name;
      }
    }
    throw Error(ErrorCode::kBusy,
                "no room to load the model '" + incoming.spec.name + "' (about " +
                    mib(incoming_bytes) + ") within the budget: the models held (" + held +
                    ") are busy, loading or pinned; retry when one is idle",
                "model");
  }
  std::vector<ModelLease> evicted;
  for (size_t i = 0; i < victims; ++i) {
    idle[i]->unloads++;
    evicted.push_back(std::move(idle[i]->model));
  }
  return evicted;
}

ModelRegistry::Unloaded ModelRegistry::unload(std::string_view name, const std::string& reason) {
  return unload_entry(name, reason, /*unregister=*/false);
}

ModelRegistry::Unloaded ModelRegistry::unregister_model(std::string_view name) {
  return unload_entry(name, "unregistered", /*unregister=*/true);
}

ModelRegistry::Unloaded ModelRegistry::unload_entry(std::string_view name,
                                                    const std::string& reason, bool unregister) {
  ModelLease model;
  Unloaded result;
  {
    MutexLock lock(mutex_);
    Entry& entry = find_locked(name);
    if (unregister) {
      if (entry.loading) {
        // Its load would land in a removed entry; the admin retries once it is loaded.
        throw Error(ErrorCode::kBusy,
                    "the model '" + entry.spec.name + "' is loading; unregister it when loaded",
                    "model");
      }
      entry.removed = true;  // from now on its names answer nothing
    }
    if (!entry.model) {
      return result;
    }
    model = std::move(entry.model);
    entry.unloads++;
    retired_.push_back(model);
    result = {.unloaded = true, .in_use = model.use_count() > 1 || model->busy()};
  }
  notify({.kind = ModelEvent::Kind::kUnloaded,
          .model = model->name(),
          .reason = reason,
          .memory_bytes = model->memory_bytes()});
  return result;  // `model` is destroyed here, or when the last request holding it ends
}

ModelStatus ModelRegistry::register_model(ModelSpec spec, bool load) {
  MutexLock lock(mutex_);
  if (stopped_) {
    throw Error(ErrorCode::kUnavailable, "the server is shutting down");
  }
  std::vector<ModelSpec> all;
  for (const auto& e : entries_) {
    if (!e.removed) {
      all.push_back(e.spec);
    }
  }
  all.push_back(spec);
  try {
    check_model_names(all, "the registered models");
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidInput, e.what(), "name");
  }
  entries_.push_back(Entry{.spec = std::move(spec)});
  Entry& entry = entries_.back();  // stays valid: a deque's push_back moves no element
  if (load) {
    try {
      lease_locked(entry, /*may_evict=*/true);
    } catch (...) {
      entry.removed = true;  // a registration whose model cannot load is taken back
      throw;
    }
  }
  return status_locked(entry);
}

ModelStatus ModelRegistry::status_locked(const Entry& e) const {
  // busy is read before the status takes its own lease.
  const bool busy = e.model && (e.model.use_count() > 1 || e.model->busy());
  return {.spec = e.spec,
          .model = e.model,
          .loading = e.loading,
          .busy = busy,
          .last_error = e.last_error,
          .loads = e.loads,
          .unloads = e.unloads};
}

void ModelRegistry::preload() {
  // By index: entries only ever append (a deque), so each is looked up under the lock.
  for (size_t i = 0;; ++i) {
    MutexLock lock(mutex_);
    if (i >= entries_.size()) {
      break;
    }
    Entry& entry = entries_[i];
    const ModelSpec spec = entry.spec;
    if (!spec.preload || entry.removed) {
      continue;
    }
    try {
      lease_locked(entry, /*may_evict=*/false);
    } catch (const Error& e) {
      // Preloads never unload each other: what does not fit waits for its first request.
      // A pinned model must fit.
      if (e.code() != ErrorCode::kBusy || spec.pinned) {
        throw;
      }
    }
  }
}

std::vector<ModelStatus> ModelRegistry::list() const {
  MutexLock lock(mutex_);
  std::vector<ModelStatus> out;
  for (const auto& e : entries_) {
    if (!e.removed) {
      out.push_back(status_locked(e));
    }
  }
  return out;
}

std::vector<ModelLease> ModelRegistry::loaded() const {
  MutexLock lock(mutex_);
  std::vector<ModelLease> out;
  for (const auto& e : entries_) {
    if (e.model) {
      out.push_back(e.model);
    }
  }
  return out;
}

void ModelRegistry::stop_accepting() {
  MutexLock lock(mutex_);
  stopped_ = true;
  for (auto& e : entries_) {
    if (e.model) {
      e.model->stop_accepting();
    }
  }
  loaded_cv_.notify_all();
}

void ModelRegistry::cancel_all() {
  std::vector<ModelLease> models = loaded();
  {
    MutexLock lock(mutex_);
    for (const auto& w : retired_) {
      if (auto m = w.lock()) {
        models.push_back(std::move(m));
      }
    }
  }
  for (const auto& m : models) {
    m->cancel_all();
  }
}

int64_t parse_byte_size(const std::string& text, const std::string& field) {
  const auto bad = [&] {
    return Error(
        ErrorCode::kInvalidInput,
        "option " + field + " must be a size such as 8G, 512M or 1073741824, not '" + text + "'",
        field);
  };
  if (text.empty()) {
    throw bad();
  }
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = text.substr(used);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) {
    unit.pop_back();
  }
  if (!unit.empty() && (unit.back() == 'i')) {
    unit.pop_back();
  }
  double scale = 1;
  if (unit == "K" || unit == "k") {
    scale = 1024.0;
  } else if (unit == "M" || unit == "m") {
    scale = 1024.0 * 1024;
  } else if (unit == "G" || unit == "g") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "t") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else if (!unit.empty()) {
    throw bad();
  }
  const double bytes = value * scale;
  if (!std::isfinite(bytes) || bytes < 1 || bytes > 9.0e18) {
    throw bad();
  }
  return static_cast<int64_t>(bytes);
}

}  // namespace mmserve::runtime
