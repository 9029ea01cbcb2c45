// A loaded whisper.cpp speech model (ggml format) and, optionally, the Silero VAD model.
//
// Ownership: SpeechModel owns one whisper_context loaded without a state (weights and vocabulary
// only); each concurrent transcription needs its own SpeechState (speech_state.h), which borrows
// the model through a shared_ptr. VadModel owns a whisper_vad_context.
//
// Threading: SpeechModel is immutable after load and may be shared by any number of threads
// (whisper.cpp reads the context's weights and vocabulary only; all per-run data lives in the
// states). VadModel::detect is thread-safe (one mutex: the VAD context keeps LSTM state).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

struct whisper_context;
struct whisper_vad_context;

namespace mmserve::engine {

struct SpeechModelOptions {
  bool use_gpu = true;     // ggml's GPU backend when there is one
  bool flash_attn = true;  // whisper.cpp's default: less memory, faster on every backend
};

class SpeechModel {
 public:
  // Loads `path`. Throws Error(kNotFound) for a missing file, Error(kModelLoad) for a file
  // whisper.cpp cannot load (with its last log lines).
  static std::shared_ptr<SpeechModel> load(const std::string& path,
                                           const SpeechModelOptions& options = {});
  ~SpeechModel();
  SpeechModel(const SpeechModel&) = delete;
  SpeechModel& operator=(const SpeechModel&) = delete;

  whisper_context* raw() const { return ctx_; }
  const std::string& path() const { return path_; }
  // A short name for APIs: the file name without its extension ("ggml-base.en").
  const std::string& id() const { return id_; }
  bool multilingual() const { return multilingual_; }
  // "tiny", "base", ... as whisper.cpp names the size.
  std::string size_name() const;

  // Tokenizes text (an initial prompt); thread-safe.
  std::vector<int32_t> tokenize(const std::string& text) const;
  // Resolves a language code or English name ("en", "english") to whisper's short code;
  // "" and "auto" stay "" (detect). Throws Error(kInvalidInput, field) for an unknown one, and
  // for any language other than English on an English-only model.
  std::string resolve_language(const std::string& language, const std::string& field) const;

 private:
  SpeechModel() = default;
  whisper_context* ctx_ = nullptr;
  std::string path_;
  std::string id_;
  bool multilingual_ = false;
};

// Fail fast, with one line, on a file that cannot be a whisper.cpp speech model (or a Silero
// VAD model): Error(kNotFound) when missing, Error(kModelLoad) when its header is not one (a
// GGUF, or the other kind). whisper.cpp's loaders trust their input and may abort on a wrong
// file, so the loads below check first.
struct SpeechModelShape {  // from the file's header
  int64_t file_bytes = 0;
  int32_t n_audio_ctx = 0, n_audio_state = 0, n_audio_layer = 0;
  int32_t n_text_ctx = 0, n_text_state = 0, n_text_layer = 0;
};
SpeechModelShape check_speech_model_file(const std::string& path, const std::string& field);
void check_vad_model_file(const std::string& path, const std::string& field);

// A span of speech found by the VAD, in seconds from the start of the audio.
struct SpeechSpan {
  double start = 0;
  double end = 0;
};

struct VadOptions {
  float threshold = 0.5f;
  int min_speech_ms = 250;
  int min_silence_ms = 100;
  float max_speech_s = 29.0f;  // longer speech is split so a span always fits one window
  int pad_ms = 30;
};

class VadModel {
 public:
  // Loads a Silero VAD model in whisper.cpp's ggml format. Throws like SpeechModel::load.
  static std::shared_ptr<VadModel> load(const std::string& path);
  ~VadModel();
  VadModel(const VadModel&) = delete;
  VadModel& operator=(const VadModel&) = delete;

  const std::string& path() const { return path_; }
  // Speech spans of 16 kHz mono audio, in order. Single-threaded; serialised by a mutex.
  std::vector<SpeechSpan> detect(std::span<const float> samples,
                                 const VadOptions& options = {}) const;

 private:
  VadModel() = default;
  whisper_vad_context* ctx_ = nullptr;
  std::string path_;
  mutable std::mutex mutex_;
};

}  // namespace mmserve::engine
