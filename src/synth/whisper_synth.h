// Synthetic whisper.cpp models: a ggml model file of a real Whisper shape (tiny by default) with
// random weights from a fixed seed, a valid vocabulary and real mel filters, so the whole speech
// path (loading, mel, encoder, decoder, timestamps) runs where no real Whisper model can be had.
//
// The header, mel filters and vocabulary come either from a loader fixture (`like`: a
// whisper.cpp model file with no tensors, such as whisper.cpp's for-tests-ggml-tiny.bin) or are
// generated here: Slaney mel filters computed as librosa does, and a byte-level vocabulary of
// 256 byte tokens plus pronounceable ASCII words. Outputs are gibberish by construction; what is
// deterministic is the file (same options, same bytes) and so the model's greedy output.
//
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::synth {

// whisper.cpp's hyperparameters, in the order of the file header.
struct WhisperShape {
  int32_t n_vocab = 51865;  // 51865 multilingual, 51864 English-only
  int32_t n_audio_ctx = 1500;
  int32_t n_audio_state = 384;
  int32_t n_audio_head = 6;
  int32_t n_audio_layer = 4;
  int32_t n_text_ctx = 448;
  int32_t n_text_state = 384;
  int32_t n_text_head = 6;
  int32_t n_text_layer = 4;
  int32_t n_mels = 80;
};

// The shapes of OpenAI's Whisper sizes: "tiny", "base", "small". Throws Error(kInvalidInput).
WhisperShape whisper_preset(const std::string& name);

struct WhisperSynthOptions {
  WhisperShape shape;
  // A whisper.cpp model file to take the mel filters and vocabulary from (its tensors, if any,
  // are ignored). Empty: generate both. Its n_vocab and n_mels replace the shape's.
  std::string like;
  bool f16 = true;  // big matrices in F16 as the published models; else everything F32
  uint64_t seed = 20240229;
};

struct WhisperSynthReport {
  WhisperShape shape;
  int64_t parameters = 0;
  int64_t bytes = 0;
  int32_t tensors = 0;
  bool from_fixture = false;  // filters and vocabulary came from `like`
};

// Writes the model to `path` (replaced atomically). Throws Error: kInvalidInput for a bad shape,
// kModelLoad for an unreadable or malformed fixture, kInternal when the file cannot be written.
WhisperSynthReport write_synthetic_whisper(const std::string& path,
                                           const WhisperSynthOptions& options);

// Slaney-style mel filterbank, as librosa.filters.mel(sr, n_fft, n_mels) computes it (Whisper's
// own filters): n_mels rows of n_fft/2 + 1 weights, row-major.
std::vector<float> mel_filters(int n_mels, int n_fft, int sample_rate);

// The generated vocabulary: the 256 single bytes in GPT-2's order, then distinct ASCII words,
// then the end-of-text entry ("" multilingual, "<|endoftext|>" English-only); 50257 entries,
// the count the published models write (whisper.cpp adds the special tokens itself).
std::vector<std::string> synthetic_vocabulary(bool multilingual);

}  // namespace mmserve::synth
