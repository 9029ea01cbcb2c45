// One loaded model and the scheduler that serves it: a text model (with its projector, if any)
// and its TextScheduler, a whisper.cpp model and its SpeechScheduler, or an embedding model and
// its EmbeddingScheduler.
//
// Ownership: made by the registry (model_registry.h), which hands out shared_ptr leases; the
// model lives until the registry has dropped it (unload) and the last lease is gone, so an
// unload never frees a model a request is using. Destruction stops the scheduler (joins its
// threads). Threading: every method is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/embedding_model.h"
#include "engine/speech_model.h"
#include "engine/vision_model.h"
#include "runtime/lora_table.h"
#include "runtime/model_spec.h"
#include "scheduler/cpu_share.h"
#include "scheduler/embedding_scheduler.h"
#include "scheduler/speech_scheduler.h"
#include "scheduler/text_scheduler.h"

namespace mmserve::runtime {

struct LoadSettings {
  int32_t threads = 0;  // engine threads (0 = every core), from the server's split
  int32_t queue_size = 64;
  int64_t memory_bytes = 0;  // estimate_model_bytes, made by the caller; 0 = load estimates it
  int32_t speech_window_threads = 2;  // speech: the least threads a window runs with
  bool speech_fallback = true;        // speech: Whisper's temperature fallback at temperature 0
  // The process's CPU threads, shared by text and speech models (cpu_share.h): when set and the
  // spec names no threads of its own, `threads` is the model's share while another model has
  // work, and alone it takes every thread.
  std::shared_ptr<scheduler::CpuShare> cpu_share;
};

// Memory a model takes once loaded, estimated from its files before loading it: the weights,
// the KV cache its context needs (f16 keys and values) and the projector, or for speech the
// weights and one decoder/encoder cache per whisper state. Throws Error when a file is missing
// or unreadable (the same checks as loading).
int64_t estimate_model_bytes(const ModelSpec& spec);

class ServedModel {
 public:
  // Loads the files, builds the scheduler and runs its readiness probe (one decode, or one
  // whisper window). Throws Error (kNotFound, kModelLoad).
  static std::shared_ptr<ServedModel> load(const ModelSpec& spec, const LoadSettings& settings);
  ~ServedModel();
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  const ModelSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  // The text scheduler; Error(kInvalidInput, "model") for a speech model.
  scheduler::TextScheduler& text() const;
  // The projector; null for a text-only or speech model.
  const std::shared_ptr<const engine::VisionModel>& vision() const { return vision_; }
  // The speech scheduler and model; Error(kInvalidInput, "model") for a text model.
  scheduler::SpeechScheduler& speech() const;
  const std::shared_ptr<const engine::SpeechModel>& speech_model() const { return speech_model_; }
  // The embedding scheduler and model; Error(kModelUnavailable, "model") for the other kinds.
  scheduler::EmbeddingScheduler& embedding() const;
  const engine::EmbeddingModel& embedding_model() const;

  // A text model's LoRA adapters (lora_table.h); Error(kInvalidInput, "model") for the other
  // kinds.
  LoraTable& loras() const;
  bool has_loras() const { return loras_ != nullptr; }

  // Requests running or waiting on it now.
  bool busy() const;
  int64_t memory_bytes() const { return memory_bytes_; }  // estimate_model_bytes
  // A text model's KV cells, shared by its parallel sequences; 0 for speech.
  int32_t context_cells() const { return context_cells_; }
  double load_seconds() const { return load_seconds_; }
  std::chrono::system_clock::time_point loaded_at() const { return loaded_at_; }

  void stop_accepting();
  void cancel_all();

 private:
  explicit ServedModel(ModelSpec spec) : spec_(std::move(spec)) {}

  ModelSpec spec_;
  std::unique_ptr<scheduler::TextScheduler> text_;
  std::unique_ptr<LoraTable> loras_;  // text models
  std::shared_ptr<const engine::VisionModel> vision_;
  std::unique_ptr<scheduler::SpeechScheduler> speech_;
  std::shared_ptr<const engine::SpeechModel> speech_model_;
  std::unique_ptr<scheduler::EmbeddingScheduler> embedding_;
  const engine::EmbeddingModel* embedding_model_ = nullptr;  // owned by embedding_
  int64_t memory_bytes_ = 0;
  int32_t context_cells_ = 0;
  double load_seconds_ = 0;
  std::chrono::system_clock::time_point loaded_at_{};
};

}  // namespace mmserve::runtime
