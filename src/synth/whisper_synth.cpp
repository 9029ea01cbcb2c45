#include "synth/whisper_synth.h"

#include <ggml.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "core/error.h"

namespace mmserve::synth {
namespace {

constexpr uint32_t kGgmlMagic = 0x67676d6c;  // "ggml", whisper.cpp's legacy model format
constexpr int kSampleRate = 16000;
constexpr int kFft = 400;
constexpr int32_t kVocabEntries = 50257;  // regular tokens written by the published models

// How the random decoder is shaped. With plain N(0, 1/sqrt(d)) weights all 51865 logits are
// about equal and the hidden state barely changes from step to step, so greedy decoding repeats
// one word to the 220-token cap and whisper.cpp's fallback re-decodes every window at five more
// temperatures: a window would cost ten times a real model's. Instead (units: logits):
// - text logits spread kTextLogitStd, so the greedy pick is confident (mean log-prob above
//   whisper.cpp's -1 threshold: no fallback);
// - decoder positions dominate the token embedding (kDecoderPositionStd), so the text varies;
// - timestamp tokens get a bias rising from kTimestampBias to kTimestampBias + kTimestampSlope
//   over the window, end-of-text kEndOfTextBias: a window ends after tens of tokens with a late
//   timestamp, in one encoder pass, as a real model does on speech.
constexpr float kTextLogitStd = 8.0f;
constexpr float kDecoderPositionStd = 3.0f;
constexpr float kTimestampBias = -18.0f;
constexpr float kTimestampSlope = 10.0f;
constexpr float kEndOfTextBias = 4.0f;

// splitmix64: tiny, fast, and the same numbers on every platform (std::normal_distribution is
// not specified bit-for-bit, so the file would differ between standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  float normal() {  // Box-Muller, one value per call
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                              std::cos(2.0 * std::numbers::pi * u2));
  }

 private:
  uint64_t state_;
};

struct Fixture {
  WhisperShape shape;
  int32_t filters_n_mel = 0;
  int32_t filters_n_fft = 0;
  std::vector<float> filters;
  std::vector<std::string> vocab;
};

template <typename T>
void read_exact(std::ifstream& in, T* out, size_t count, const std::string& path,
                const char* what) {
  in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(count * sizeof(T)));
  if (!in) {
    throw Error(ErrorCode::kModelLoad,
                "'" + path + "' is truncated: it ends inside the " + what + " (not a whisper.cpp " +
                    "model file?)",
                "like");
  }
}

Fixture read_fixture(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kModelLoad, "cannot open '" + path + "'", "like");
  Fixture f;
  uint32_t magic = 0;
  read_exact(in, &magic, 1, path, "header");
  if (magic != kGgmlMagic) {
    throw Error(ErrorCode::kModelLoad,
                "'" + path + "' is not a whisper.cpp ggml model (bad magic number)", "like");
  }
  std::array<int32_t, 11> h{};
  read_exact(in, h.data(), h.size(), path, "header");
  f.shape = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]};
  read_exact(in, &f.filters_n_mel, 1, path, "mel filters");
  read_exact(in, &f.filters_n_fft, 1, path, "mel filters");
  if (f.filters_n_mel <= 0 || f.filters_n_mel > 512 || f.filters_n_fft <= 0 ||
      f.filters_n_fft > 4096) {
    throw Error(ErrorCode::kModelLoad, "'" + path + "' has implausible mel filter dimensions",
                "like");
  }
  f.filters.resize(static_cast<size_t>(f.filters_n_mel) * f.filters_n_fft);
  read_exact(in, f.filters.data(), f.filters.size(), path, "mel filters");
  int32_t n_vocab = 0;
  read_exact(in, &n_vocab, 1, path, "vocabulary");
  if (n_vocab <= 256 || n_vocab > f.shape.n_vocab) {
    throw Error(ErrorCode::kModelLoad, "'" + path + "' has an implausible vocabulary size", "like");
  }
  f.vocab.resize(static_cast<size_t>(n_vocab));
  for (auto& word : f.vocab) {
    uint32_t len = 0;
    read_exact(in, &len, 1, path, "vocabulary");
    if (len > 1024) {
      throw Error(ErrorCode::kModelLoad, "'" + path + "' has a malformed vocabulary", "like");
    }
    word.resize(len);
    read_exact(in, word.data(), len, path, "vocabulary");
  }
  return f;
}

void validate(const WhisperShape& s) {
  auto require = [](bool ok, const std::string& what, const char* field) {
    if (!ok) throw Error(ErrorCode::kInvalidInput, what, field);
  };
  require(s.n_audio_state == s.n_text_state, "audio and text state sizes must be equal", "state");
  require(s.n_audio_state >= 8 && s.n_audio_state <= 4096, "state must be in 8..4096", "state");
  require(s.n_audio_head >= 1 && s.n_audio_state % s.n_audio_head == 0 && s.n_text_head >= 1 &&
              s.n_text_state % s.n_text_head == 0,
          "heads must divide the state size", "heads");
  require(
      s.n_audio_layer >= 1 && s.n_audio_layer <= 64 && s.n_text_layer >= 1 && s.n_text_layer <= 64,
      "layers must be in 1..64", "layers");
  // whisper.cpp takes a 2-layer decoder for distil-whisper and turns timestamps off for it.
  require(s.n_text_layer != 2,
          "2 decoder layers would make whisper.cpp treat the model as distil-whisper (no "
          "timestamps); pick another count",
          "layers");
  require(s.n_vocab == 51864 || s.n_vocab == 51865 || s.n_vocab == 51866,
          "n_vocab must be 51864 (English), 51865 or 51866 (multilingual)", "vocab");
  require(s.n_audio_ctx == 1500, "n_audio_ctx must be 1500 (30 s of mel frames)", "audio_ctx");
  require(s.n_text_ctx >= 16 && s.n_text_ctx <= 4096, "n_text_ctx must be in 16..4096", "text_ctx");
  require(s.n_mels == 80 || s.n_mels == 128, "n_mels must be 80 or 128", "mels");
}

double hz_to_mel(double hz) {  // Slaney's scale, as librosa with htk=False
  constexpr double f_sp = 200.0 / 3.0;
  constexpr double min_log_hz = 1000.0;
  const double min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return hz >= min_log_hz ? min_log_mel + std::log(hz / min_log_hz) / logstep : hz / f_sp;
}

double mel_to_hz(double mel) {
  constexpr double f_sp = 200.0 / 3.0;
  constexpr double min_log_hz = 1000.0;
  const double min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return mel >= min_log_mel ? min_log_hz * std::exp(logstep * (mel - min_log_mel)) : f_sp * mel;
}

// Writes the file as whisper.cpp's convert-pt-to-ggml.py does: header, filters, vocabulary,
// then tensors (n_dims, name length, type, dims, name, data).
class ModelWriter {
 public:
  ModelWriter(const std::string& path, bool f16) : out_(path, std::ios::binary), f16_(f16) {
    if (!out_) throw Error(ErrorCode::kInternal, "cannot write '" + path + "'", "out");
  }
  template <typename T>
  void put(const T& v) {
    out_.write(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_bytes(const void* data, size_t n) {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  }
  // `big` marks the matrices the published models store in F16.
  void tensor(const std::string& name, std::vector<int32_t> ne, const std::vector<float>& data,
              bool big) {
    const bool half = f16_ && big;
    put(static_cast<int32_t>(ne.size()));
    put(static_cast<int32_t>(name.size()));
    put(static_cast<int32_t>(half ? 1 : 0));
    for (int32_t d : ne) put(d);
    put_bytes(name.data(), name.size());
    if (half) {
      std::vector<ggml_fp16_t> h(data.size());
      ggml_fp32_to_fp16_row(data.data(), h.data(), static_cast<int64_t>(data.size()));
      put_bytes(h.data(), h.size() * sizeof(ggml_fp16_t));
    } else {
      put_bytes(data.data(), data.size() * sizeof(float));
    }
    ++tensors_;
    parameters_ += static_cast<int64_t>(data.size());
  }
  void close(const std::string& path) {
    out_.close();
    if (!out_) throw Error(ErrorCode::kInternal, "writing '" + path + "' failed", "out");
  }
  int32_t tensors() const { return tensors_; }
  int64_t parameters() const { return parameters_; }

 private:
  std::ofstream out_;
  bool f16_;
  int32_t tensors_ = 0;
  int64_t parameters_ = 0;
};

class Weights {
 public:
  Weights(ModelWriter& w, Rng& rng) : w_(w), rng_(rng) {}

  std::vector<float> normal(size_t n, float stddev) {
    std::vector<float> v(n);
    for (auto& x : v) x = rng_.normal() * stddev;
    return v;
  }
  void linear(const std::string& prefix, int32_t in, int32_t out, bool bias) {
    w_.tensor(prefix + ".weight", {in, out},
              normal(static_cast<size_t>(in) * out, 1.0f / std::sqrt(static_cast<float>(in))),
              true);
    if (bias) w_.tensor(prefix + ".bias", {out}, normal(out, 0.02f), false);
  }
  void layer_norm(const std::string& prefix, int32_t n) {
    w_.tensor(prefix + ".weight", {n}, std::vector<float>(n, 1.0f), false);
    w_.tensor(prefix + ".bias", {n}, std::vector<float>(n, 0.0f), false);
  }
  void attention(const std::string& prefix, int32_t n) {
    linear(prefix + ".query", n, n, true);
    linear(prefix + ".key", n, n, false);  // Whisper's key projection has no bias
    linear(prefix + ".value", n, n, true);
    linear(prefix + ".out", n, n, true);
  }
  void block(const std::string& prefix, int32_t n, bool cross) {
    layer_norm(prefix + ".mlp_ln", n);
    linear(prefix + ".mlp.0", n, 4 * n, true);
    linear(prefix + ".mlp.2", 4 * n, n, true);
    layer_norm(prefix + ".attn_ln", n);
    attention(prefix + ".attn", n);
    if (cross) {
      layer_norm(prefix + ".cross_attn_ln", n);
      attention(prefix + ".cross_attn", n);
    }
  }

 private:
  ModelWriter& w_;
  Rng& rng_;
};

// Whisper's fixed encoder position embedding (whisper/model.py: sinusoids).
std::vector<float> sinusoids(int32_t length, int32_t channels) {
  std::vector<float> v(static_cast<size_t>(length) * channels);
  const int32_t half = channels / 2;
  const double increment = std::log(10000.0) / std::max(1, half - 1);
  for (int32_t t = 0; t < length; ++t) {
    for (int32_t c = 0; c < half; ++c) {
      const double x = t * std::exp(-increment * c);
      v[static_cast<size_t>(t) * channels + c] = static_cast<float>(std::sin(x));
      v[static_cast<size_t>(t) * channels + half + c] = static_cast<float>(std::cos(x));
    }
  }
  return v;
}

void write_tensors(ModelWriter& w, const WhisperShape& s, Rng& rng) {
  Weights g(w, rng);
  const int32_t n = s.n_audio_state;
  w.tensor("encoder.positional_embedding", {n, s.n_audio_ctx}, sinusoids(s.n_audio_ctx, n), false);
  w.tensor("encoder.conv1.weight", {3, s.n_mels, n},
           g.normal(static_cast<size_t>(3) * s.n_mels * n, 1.0f / std::sqrt(3.0f * s.n_mels)),
           true);
  w.tensor("encoder.conv1.bias", {1, n}, g.normal(n, 0.02f), false);
  w.tensor("encoder.conv2.weight", {3, n, n},
           g.normal(static_cast<size_t>(3) * n * n, 1.0f / std::sqrt(3.0f * n)), true);
  w.tensor("encoder.conv2.bias", {1, n}, g.normal(n, 0.02f), false);
  for (int32_t i = 0; i < s.n_audio_layer; ++i) {
    g.block("encoder.blocks." + std::to_string(i), n, false);
  }
  g.layer_norm("encoder.ln_post", n);

  const int32_t t = s.n_text_state;
  w.tensor("decoder.positional_embedding", {t, s.n_text_ctx},
           g.normal(static_cast<size_t>(t) * s.n_text_ctx, kDecoderPositionStd), false);

  // Token embeddings double as the output projection (logits = ln(h) . E). A shared direction u
  // in both decoder.ln.bias and the embeddings of end-of-text and timestamp tokens gives those
  // tokens a bias (see kEndOfTextBias); the rest is Gaussian with the chosen logit spread.
  const bool multilingual = s.n_vocab >= 51865;
  const int32_t eot = multilingual ? 50257 : 50256;
  const int32_t n_langs = s.n_vocab - 51765 - (multilingual ? 1 : 0);
  const int32_t beg = 50363 + (multilingual ? n_langs - 98 : 0);  // whisper_token_beg
  std::vector<float> u = g.normal(t, 1.0f);
  double norm = 0;
  for (float x : u) norm += static_cast<double>(x) * x;
  for (auto& x : u) x = static_cast<float>(x / std::sqrt(norm));
  auto embeddings = g.normal(static_cast<size_t>(t) * s.n_vocab,
                             kTextLogitStd / std::sqrt(static_cast<float>(t)));
  auto add_bias = [&](int32_t token, float bias) {
    for (int32_t c = 0; c < t; ++c) embeddings[static_cast<size_t>(token) * t + c] += bias * u[c];
  };
  add_bias(eot, kEndOfTextBias);
  for (int32_t id = beg; id < s.n_vocab; ++id) {
    add_bias(id, kTimestampBias + kTimestampSlope * static_cast<float>(id - beg) /
                                      static_cast<float>(s.n_vocab - beg));
  }
  w.tensor("decoder.token_embedding.weight", {t, s.n_vocab}, embeddings, true);
  for (int32_t i = 0; i < s.n_text_layer; ++i) {
    g.block("decoder.blocks." + std::to_string(i), t, true);
  }
  w.tensor("decoder.ln.weight", {t}, std::vector<float>(t, 1.0f), false);
  w.tensor("decoder.ln.bias", {t}, u, false);
}

}  // namespace

WhisperShape whisper_preset(const std::string& name) {
  WhisperShape s;
  auto set = [&](int32_t state, int32_t heads, int32_t layers) {
    s.n_audio_state = s.n_text_state = state;
    s.n_audio_head = s.n_text_head = heads;
    s.n_audio_layer = s.n_text_layer = layers;
  };
  if (name == "tiny") {
    set(384, 6, 4);
  } else if (name == "base") {
    set(512, 8, 6);
  } else if (name == "small") {
    set(768, 12, 12);
  } else {
    throw Error(ErrorCode::kInvalidInput,
                "unknown whisper size '" + name + "'; valid: tiny, base, small", "size");
  }
  return s;
}

std::vector<float> mel_filters(int n_mels, int n_fft, int sample_rate) {
  const int n_bins = n_fft / 2 + 1;
  // n_mels + 2 points evenly spaced on the mel scale from 0 Hz to Nyquist.
  std::vector<double> mel_f(n_mels + 2);
  const double mel_max = hz_to_mel(sample_rate / 2.0);
  for (int i = 0; i < n_mels + 2; ++i) mel_f[i] = mel_to_hz(mel_max * i / (n_mels + 1));
  std::vector<float> weights(static_cast<size_t>(n_mels) * n_bins, 0.0f);
  for (int m = 0; m < n_mels; ++m) {
    const double lower_width = mel_f[m + 1] - mel_f[m];
    const double upper_width = mel_f[m + 2] - mel_f[m + 1];
    const double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);  // Slaney: constant energy per band
    for (int k = 0; k < n_bins; ++k) {
      const double freq = static_cast<double>(k) * sample_rate / n_fft;
      const double lower = (freq - mel_f[m]) / lower_width;
      const double upper = (mel_f[m + 2] - freq) / upper_width;
      weights[static_cast<size_t>(m) * n_bins + k] =
          static_cast<float>(std::max(0.0, std::min(lower, upper)) * enorm);
    }
  }
  return weights;
}

std::vector<std::string> synthetic_vocabulary(bool multilingual) {
  std::vector<std::string> vocab;
  vocab.reserve(kVocabEntries);
  // GPT-2's byte order: printable Latin-1 first, then the rest (whisper.cpp's tokenizer needs
  // every single byte so that any prompt can be tokenized).
  std::vector<int> bytes;
  for (int b = '!'; b <= '~'; ++b) bytes.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bytes.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bytes.push_back(b);
  for (int b = 0; b < 256; ++b) {
    if (std::find(bytes.begin(), bytes.end(), b) == bytes.end()) bytes.push_back(b);
  }
  for (int b : bytes) vocab.emplace_back(1, static_cast<char>(b));
  // Words of consonant-vowel syllables: each decomposes one way, so all are distinct, and every
  // sequence of them is readable ASCII.
  static constexpr const char* kConsonants = "bdfghklmnprstvwz";
  static constexpr const char* kVowels = "aeiou";
  std::vector<std::string> syllables;
  for (const char* c = kConsonants; *c != 0; ++c) {
    for (const char* v = kVowels; *v != 0; ++v) syllables.push_back(std::string{*c, *v});
  }
  const size_t n_syl = syllables.size();
  const size_t target = kVocabEntries - 1;
  for (int length = 1; vocab.size() < target; ++length) {
    size_t combos = 1;
    for (int i = 0; i < length; ++i) combos *= n_syl;
    for (size_t k = 0; k < combos && vocab.size() < target; ++k) {
      std::string word;
      for (size_t r = k, i = 0; i < static_cast<size_t>(length); ++i, r /= n_syl) {
        word += syllables[r % n_syl];
      }
      std::string capital = word;
      capital[0] = static_cast<char>(capital[0] - 'a' + 'A');
      for (const auto& w : {" " + word, word, " " + capital, capital}) {
        if (vocab.size() < target) vocab.push_back(w);
      }
    }
  }
  vocab.emplace_back(multilingual ? "" : "<|endoftext|>");
  return vocab;
}

WhisperSynthReport write_synthetic_whisper(const std::string& path,
                                           const WhisperSynthOptions& options) {
  WhisperSynthReport report;
  WhisperShape shape = options.shape;
  std::vector<float> filters;
  int32_t filters_n_fft = kFft / 2 + 1;
  std::vector<std::string> vocab;
  if (!options.like.empty()) {
    Fixture f = read_fixture(options.like);
    shape.n_vocab = f.shape.n_vocab;
    shape.n_mels = f.shape.n_mels;
    if (f.filters_n_mel != shape.n_mels) {
      throw Error(ErrorCode::kModelLoad,
                  "'" + options.like + "' has " + std::to_string(f.filters_n_mel) +
                      " mel filters for " + std::to_string(shape.n_mels) + " mels",
                  "like");
    }
    filters = std::move(f.filters);
    filters_n_fft = f.filters_n_fft;
    vocab = std::move(f.vocab);
    report.from_fixture = true;
  }
  validate(shape);
  if (vocab.empty()) {
    filters = mel_filters(shape.n_mels, kFft, kSampleRate);
    vocab = synthetic_vocabulary(shape.n_vocab >= 51865);
  }

  const std::string tmp = path + ".tmp";
  {
    ModelWriter w(tmp, options.f16);
    w.put(kGgmlMagic);
    for (int32_t v : {shape.n_vocab, shape.n_audio_ctx, shape.n_audio_state, shape.n_audio_head,
                      shape.n_audio_layer, shape.n_text_ctx, shape.n_text_state, shape.n_text_head,
                      shape.n_text_layer, shape.n_mels}) {
      w.put(v);
    }
    w.put(static_cast<int32_t>(options.f16 ? 1 : 0));  // ftype: 1 = mostly F16, 0 = all F32
    w.put(shape.n_mels);
    w.put(filters_n_fft);
    w.put_bytes(filters.data(), filters.size() * sizeof(float));
    w.put(static_cast<int32_t>(vocab.size()));
    for (const auto& word : vocab) {
      w.put(static_cast<uint32_t>(word.size()));
      w.put_bytes(word.data(), word.size());
    }
    Rng rng(options.seed);
    write_tensors(w, shape, rng);
    w.close(tmp);
    report.tensors = w.tensors();
    report.parameters = w.parameters();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(ErrorCode::kInternal, "cannot move the model into '" + path + "'", "out");
  }
  report.shape = shape;
  report.bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  return report;
}

}  // namespace mmserve::synth
