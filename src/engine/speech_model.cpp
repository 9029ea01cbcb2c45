#include "engine/speech_model.h"

#include <whisper.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/backend.h"

namespace mmserve::engine {
namespace {

constexpr uint32_t kGgmlMagic = 0x67676d6c;  // "ggml", little-endian, as whisper.cpp writes it

void require_file(const std::string& path, const char* what, const char* field) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, std::string(what) + " not found: " + path, field);
  }
}

std::string load_failure(const std::string& path, const char* what) {
  std::string why = recent_engine_errors();
  if (why.empty()) why = "not a whisper.cpp ggml model file";
  return "cannot load " + std::string(what) + " " + path + ": " + why;
}

}  // namespace

SpeechModelShape check_speech_model_file(const std::string& path, const std::string& field) {
  require_file(path, "model file", field.c_str());
  std::ifstream in(path, std::ios::binary);
  uint32_t magic = 0;
  int32_t h[11] = {};  // n_vocab, n_audio_ctx, n_audio_state, ..., n_mels, ftype
  in.read(reinterpret_cast<char*>(&magic), sizeof(magic));
  in.read(reinterpret_cast<char*>(h), sizeof(h));
  const bool plausible = in && magic == kGgmlMagic && h[0] >= 51864 && h[0] <= 51866 && h[1] > 0 &&
                         h[2] > 0 && h[3] > 0 && h[4] > 0 && h[5] > 0 && h[6] > 0 && h[7] > 0 &&
                         h[8] > 0 && (h[9] == 80 || h[9] == 128);
  if (!plausible) {
    throw Error(ErrorCode::kModelLoad,
                path + " is not a whisper.cpp speech model (ggml-*.bin); GGUF files are for -m, " +
                    "Silero VAD files for --vad-model",
                field);
  }
  in.seekg(0, std::ios::end);
  return {.file_bytes = static_cast<int64_t>(in.tellg()),
          .n_audio_ctx = h[1],
          .n_audio_state = h[2],
          .n_audio_layer = h[4],
          .n_text_ctx = h[5],
          .n_text_state = h[6],
          .n_text_layer = h[8]};
}

void check_vad_model_file(const std::string& path, const std::string& field) {
  require_file(path, "model file", field.c_str());
  std::ifstream in(path, std::ios::binary);
  uint32_t magic = 0;
  int32_t len = 0;
  in.read(reinterpret_cast<char*>(&magic), sizeof(magic));
  in.read(reinterpret_cast<char*>(&len), sizeof(len));
  std::string type(len > 0 && len <= 64 ? static_cast<size_t>(len) : 0, '\0');
  in.read(type.data(), static_cast<std::streamsize>(type.size()));
  if (!in || magic != kGgmlMagic || !type.starts_with("silero")) {
    throw Error(ErrorCode::kModelLoad,
                path + " is not a Silero VAD model in whisper.cpp's format (ggml-silero-*.bin)",
                field);
  }
}

std::shared_ptr<SpeechModel> SpeechModel::load(const std::string& path,
                                               const SpeechModelOptions& options) {
  check_speech_model_file(path, "whisper-model");
  ensure_backend_initialized();
  clear_recent_engine_errors();
  whisper_context_params params = whisper_context_default_params();
  params.use_gpu = options.use_gpu;
  params.flash_attn = options.flash_attn;
  whisper_context* ctx = whisper_init_from_file_with_params_no_state(path.c_str(), params);
  if (ctx == nullptr) {
    throw Error(ErrorCode::kModelLoad, load_failure(path, "the speech model"), "whisper-model");
  }
  std::shared_ptr<SpeechModel> model(new SpeechModel());
  model->ctx_ = ctx;
  model->path_ = path;
  model->id_ = std::filesystem::path(path).stem().string();
  model->multilingual_ = whisper_is_multilingual(ctx) != 0;
  return model;
}

SpeechModel::~SpeechModel() {
  if (ctx_ != nullptr) whisper_free(ctx_);
}

std::string SpeechModel::size_name() const {
  return whisper_model_type_readable(ctx_);
}

std::vector<int32_t> SpeechModel::tokenize(const std::string& text) const {
  std::vector<whisper_token> tokens(text.size() + 8);
  int n = whisper_tokenize(ctx_, text.c_str(), tokens.data(), static_cast<int>(tokens.size()));
  if (n < 0) {
    tokens.resize(static_cast<size_t>(-n));
    n = whisper_tokenize(ctx_, text.c_str(), tokens.data(), static_cast<int>(tokens.size()));
  }
  tokens.resize(static_cast<size_t>(std::max(0, n)));
  return tokens;
}

std::string SpeechModel::resolve_language(const std::string& language,
                                          const std::string& field) const {
  std::string lang = language;
  std::transform(lang.begin(), lang.end(), lang.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lang.empty() || lang == "auto") return multilingual_ ? "" : "en";
  // whisper_lang_id logs an error for unknown names; look up quietly first.
  int id = -1;
  for (int i = 0; i <= whisper_lang_max_id(); ++i) {
    if (lang == whisper_lang_str(i) || lang == whisper_lang_str_full(i)) {
      id = i;
      break;
    }
  }
  if (id < 0) {
    throw Error(ErrorCode::kInvalidInput,
                "unknown language '" + language +
                    "': use an ISO 639-1 code Whisper knows (en, de, fr, zh, ...) or omit it to "
                    "detect the language",
                field);
  }
  const std::string code = whisper_lang_str(id);
  if (!multilingual_ && code != "en") {
    throw Error(
        ErrorCode::kInvalidInput,
        "the speech model " + id_ + " is English-only; it cannot transcribe '" + language + "'",
        field);
  }
  return code;
}

std::shared_ptr<VadModel> VadModel::load(const std::string& path) {
  check_vad_model_file(path, "vad-model");
  ensure_backend_initialized();
  clear_recent_engine_errors();
  whisper_vad_context_params params = whisper_vad_default_context_params();
  params.n_threads = 1;    // Silero is tiny; one thread outside the speech thread budget
  params.use_gpu = false;  // and a GPU round trip per 32 ms chunk would cost more than it saves
  whisper_vad_context* ctx = whisper_vad_init_from_file_with_params(path.c_str(), params);
  if (ctx == nullptr) {
    throw Error(ErrorCode::kModelLoad, load_failure(path, "the VAD model"), "vad-model");
  }
  std::shared_ptr<VadModel> model(new VadModel());
  model->ctx_ = ctx;
  model->path_ = path;
  return model;
}

VadModel::~VadModel() {
  if (ctx_ != nullptr) whisper_vad_free(ctx_);
}

std::vector<SpeechSpan> VadModel::detect(std::span<const float> samples,
                                         const VadOptions& options) const {
  whisper_vad_params params = whisper_vad_default_params();
  params.threshold = options.threshold;
  params.min_speech_duration_ms = options.min_speech_ms;
  params.min_silence_duration_ms = options.min_silence_ms;
  params.max_speech_duration_s = options.max_speech_s;
  params.speech_pad_ms = options.pad_ms;
  std::vector<SpeechSpan> spans;
  std::lock_guard lock(mutex_);
  whisper_vad_segments* segments = whisper_vad_segments_from_samples(
      ctx_, params, samples.data(), static_cast<int>(samples.size()));
  if (segments == nullptr) {
    throw Error(ErrorCode::kInternal, "voice activity detection failed: " + recent_engine_errors());
  }
  const int n = whisper_vad_segments_n_segments(segments);
  spans.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    // whisper.cpp reports VAD times in centiseconds.
    spans.push_back({whisper_vad_segments_get_segment_t0(segments, i) / 100.0,
                     whisper_vad_segments_get_segment_t1(segments, i) / 100.0});
  }
  whisper_vad_free_segments(segments);
  return spans;
}

}  // namespace mmserve::engine
