// The synthetic whisper model writer: real mel filters, a usable vocabulary, a file whisper.cpp
// loads, and the same bytes for the same options.
#include <gtest/gtest.h>
#include <unistd.h>
#include <whisper.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "engine/speech_model.h"
#include "synth/whisper_synth.h"
#include "test_support.h"

namespace mmserve::synth {
namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("mmserve-synth-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

WhisperSynthOptions small() {
  WhisperSynthOptions o;
  o.shape.n_audio_state = o.shape.n_text_state = 64;
  o.shape.n_audio_head = o.shape.n_text_head = 2;
  o.shape.n_audio_layer = o.shape.n_text_layer = 1;
  return o;
}

TEST(WhisperSynth, MelFiltersMatchWhispersOwn) {
  const std::string fixture = mmserve::testing::shared_path("models/for-tests-ggml-tiny.bin");
  MMSERVE_REQUIRE_SHARED(fixture);
  // The fixture's filters sit after the magic, 11 hyperparameters and two dimensions.
  std::ifstream in(fixture, std::ios::binary);
  in.seekg(4 + 11 * 4);
  int32_t n_mel = 0, n_fft = 0;
  in.read(reinterpret_cast<char*>(&n_mel), 4);
  in.read(reinterpret_cast<char*>(&n_fft), 4);
  ASSERT_EQ(n_mel, 80);
  ASSERT_EQ(n_fft, 201);
  std::vector<float> expected(80 * 201);
  in.read(reinterpret_cast<char*>(expected.data()),
          static_cast<std::streamsize>(expected.size() * 4));
  const auto got = mel_filters(80, 400, 16000);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-6) << i;
}

TEST(WhisperSynth, GeneratedVocabularyIsCompleteAndDistinct) {
  for (const bool multilingual : {true, false}) {
    const auto vocab = synthetic_vocabulary(multilingual);
    ASSERT_EQ(vocab.size(), 50257u);
    EXPECT_EQ(vocab.back(), multilingual ? "" : "<|endoftext|>");
    EXPECT_EQ(vocab[0], "!");  // GPT-2's byte order
    std::set<std::string> distinct(vocab.begin(), vocab.end());
    EXPECT_EQ(distinct.size(), vocab.size());
    for (int b = 0; b < 256; ++b) EXPECT_TRUE(distinct.count(std::string(1, static_cast<char>(b))));
    for (size_t i = 256; i + 1 < vocab.size(); ++i) {
      for (char c : vocab[i]) ASSERT_TRUE(c == ' ' || std::isalpha(static_cast<unsigned char>(c)));
    }
  }
}

TEST(WhisperSynth, WritesALoadableModelDeterministically) {
  const auto a = temp_file("a.bin");
  const auto b = temp_file("b.bin");
  const auto c = temp_file("c.bin");
  const auto report = write_synthetic_whisper(a, small());
  EXPECT_FALSE(report.from_fixture);
  // Encoder: 5 + 15 per block + 2; decoder: 2 + 24 per block + 2.
  EXPECT_EQ(report.tensors, 22 + 28);
  EXPECT_EQ(report.bytes, static_cast<int64_t>(std::filesystem::file_size(a)));
  write_synthetic_whisper(b, small());
  auto other = small();
  other.seed = 7;
  write_synthetic_whisper(c, other);
  EXPECT_EQ(slurp(a), slurp(b));
  EXPECT_NE(slurp(a), slurp(c));

  const auto model = engine::SpeechModel::load(a, {.use_gpu = false});
  EXPECT_TRUE(model->multilingual());
  whisper_context* ctx = model->raw();
  EXPECT_EQ(whisper_model_n_audio_state(ctx), 64);
  EXPECT_EQ(whisper_model_n_text_layer(ctx), 1);
  EXPECT_EQ(whisper_n_vocab(ctx), 51865);
  EXPECT_EQ(whisper_token_eot(ctx), 50257);
  EXPECT_EQ(whisper_token_beg(ctx), 50364);
  for (const auto& p : {a, b, c}) std::filesystem::remove(p);
}

TEST(WhisperSynth, TakesVocabularyAndFiltersFromAFixture) {
  const std::string fixture = mmserve::testing::shared_path("models/for-tests-ggml-tiny.en.bin");
  MMSERVE_REQUIRE_SHARED(fixture);
  const auto path = temp_file("like.bin");
  auto o = small();
  o.like = fixture;
  const auto report = write_synthetic_whisper(path, o);
  EXPECT_TRUE(report.from_fixture);
  EXPECT_EQ(report.shape.n_vocab, 51864);  // the fixture's English vocabulary
  const auto model = engine::SpeechModel::load(path, {.use_gpu = false});
  EXPECT_FALSE(model->multilingual());
  EXPECT_STREQ(whisper_token_to_str(model->raw(), 256), " t");  // GPT-2's first merge
  std::filesystem::remove(path);
}

TEST(WhisperSynth, RefusesBadShapesAndFixtures) {
  auto expect = [](WhisperSynthOptions o, ErrorCode code) {
    try {
      write_synthetic_whisper(temp_file("bad.bin"), o);
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
    }
  };
  auto o = small();
  o.shape.n_audio_head = 3;  // does not divide 64
  expect(o, ErrorCode::kInvalidInput);
  o = small();
  o.shape.n_text_layer = 2;  // whisper.cpp would take it for distil-whisper
  expect(o, ErrorCode::kInvalidInput);
  o = small();
  o.shape.n_vocab = 1000;
  expect(o, ErrorCode::kInvalidInput);
  EXPECT_THROW(whisper_preset("gigantic"), Error);
  o = small();
  o.like = "/nonexistent/fixture.bin";
  expect(o, ErrorCode::kModelLoad);
  const auto text = temp_file("not-a-model.txt");
  std::ofstream(text) << "definitely not a ggml file";
  o.like = text;
  expect(o, ErrorCode::kModelLoad);
  std::filesystem::remove(text);
}

}  // namespace
}  // namespace mmserve::synth
