// What a served model is, before it is loaded: its names, kind, files and serving settings.
// Made from the command line (today's single-model flags) or from a models file
// (models_file.h); the registry (model_registry.h) loads and unloads it. Plain data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mmserve::runtime {

// A text model may carry a projector (then it also describes images); a speech model is a
// whisper.cpp model; an embedding model is a GGUF model with pooling (BERT family, ...).
enum class ModelKind { kText, kSpeech, kEmbedding };
const char* model_kind_name(ModelKind kind);

// The tasks of the API, each served by one kind of model.
enum class Task { kTextGen, kImageCaption, kSpeechTranscribe, kEmbed };
const char* task_name(Task task);

// A LoRA adapter a text model serves (--lora name=FILE[:scale], the models file's `lora`).
struct LoraSpec {
  std::string name;  // requests ask for it as "MODEL:name" or with a `lora` parameter
  std::string path;  // a LoRA GGUF for this model
  float scale = 1.0F;
};

struct ModelSpec {
  std::string name;                  // what `model` in a request says; unique with the aliases
  std::vector<std::string> aliases;  // other names it answers to ("gpt-4o-mini", ...)
  ModelKind kind = ModelKind::kText;
  std::string path;         // GGUF (text, embedding) or whisper.cpp ggml .bin (speech)
  std::string mmproj_path;  // text: multimodal projector; empty: text only
  std::string vad_path;     // speech: Silero VAD; empty: windows cut at quiet points
  // text:
  int32_t parallel = 4;
  int32_t ctx_size = 0;  // 0 = parallel x min(training context, 4096)
  // (embedding: ctx_size is the most tokens of one input, 0 = min(training context, 8192);
  // batch_size the most tokens of one decode, at least one input's; gpu_layers as text)
  int32_t batch_size = 512;
  int32_t gpu_layers = -1;     // layers offloaded to a GPU when there is one; -1 = all, 0 = none
  int32_t cpu_moe_layers = 0;  // MoE: layers whose experts stay in system memory; -1 = all
  // speech:
  int32_t speech_parallel = 2;
  int32_t threads = 0;          // 0 = the server's split of --threads (runtime.h)
  bool pinned = false;          // never unloaded to make room
  bool preload = true;          // loaded at startup; else at its first request
  bool capture = false;         // its completed calls are captured (serve --capture opt-in)
  std::vector<LoraSpec> loras;  // text: adapters loaded with it (more may be loaded at run time)

  bool serves(Task task) const;
  bool answers_to(std::string_view model_name) const;
};

}  // namespace mmserve::runtime
