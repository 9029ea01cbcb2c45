// The whisper.cpp wrappers on a small synthetic model: loading, languages, and transcribing a
// window (structure and determinism; a random model's words mean nothing).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "audio_test_support.h"
#include "core/error.h"
#include "core/utf8.h"
#include "engine/speech_model.h"
#include "engine/speech_state.h"
#include "media/audio_decode.h"
#include "test_support.h"

namespace mmserve::engine {
namespace {

constexpr int kRate = 16000;

// Speech-like input without ../shared: a few seconds of gliding tones with pauses.
std::vector<float> chirps(double seconds) {
  std::vector<float> v(static_cast<size_t>(seconds * kRate));
  for (size_t i = 0; i < v.size(); ++i) {
    const double t = static_cast<double>(i) / kRate;
    const double gate = std::fmod(t, 1.0) < 0.7 ? 1.0 : 0.0;
    v[i] =
        static_cast<float>(gate * 0.3 * std::sin(2 * M_PI * (200 + 300 * std::fmod(t, 1.0)) * t));
  }
  return v;
}

std::shared_ptr<SpeechModel> small_model(bool english = false) {
  return SpeechModel::load(mmserve::testing::small_whisper_model(english), {.use_gpu = false});
}

std::string joined(const WindowResult& r) {
  std::string s;
  for (const auto& seg : r.segments)
    s += "[" + std::to_string(seg.start) + "-" + std::to_string(seg.end) + "]" + seg.text;
  return s;
}

TEST(SpeechModel, LoadsTheSyntheticModelAndRefusesOtherFiles) {
  const auto model = small_model();
  EXPECT_TRUE(model->multilingual());
  EXPECT_FALSE(small_model(true)->multilingual());
  EXPECT_FALSE(model->tokenize("hello world").empty());
  try {
    SpeechModel::load("/nonexistent/ggml-tiny.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  const std::string stories = mmserve::testing::stories_model();
  if (!std::filesystem::exists(stories)) GTEST_SKIP() << "needs " << stories << " (absent)";
  try {
    SpeechModel::load(stories);  // a GGUF language model
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelLoad);
  }
  EXPECT_THROW(check_speech_model_file(stories, "--whisper-model"), Error);
  EXPECT_NO_THROW(check_speech_model_file(mmserve::testing::small_whisper_model(), "x"));
}

TEST(SpeechModel, ResolvesLanguages) {
  const auto model = small_model();
  EXPECT_EQ(model->resolve_language("", "language"), "");
  EXPECT_EQ(model->resolve_language("auto", "language"), "");
  EXPECT_EQ(model->resolve_language("EN", "language"), "en");
  EXPECT_EQ(model->resolve_language("german", "language"), "de");
  try {
    model->resolve_language("klingon", "parameters.language");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "parameters.language");
  }
  const auto english = small_model(true);
  EXPECT_EQ(english->resolve_language("", "language"), "en");  // nothing to detect
  EXPECT_THROW(english->resolve_language("fr", "language"), Error);
}

TEST(SpeechState, TranscribesAWindowDeterministicallyWithinItsBounds) {
  const auto model = small_model();
  SpeechState state(model);
  const auto audio = chirps(6.0);
  WindowTask task;
  task.samples = audio;
  task.offset = 30.0;  // the window's place in a longer recording
  task.language = "en";
  task.threads = 2;
  const auto first = state.run(task);
  EXPECT_EQ(first.language, "en");
  EXPECT_GE(first.encoder_passes, 1);
  ASSERT_FALSE(first.segments.empty());
  for (const auto& s : first.segments) {
    EXPECT_GE(s.start, 30.0);
    EXPECT_LE(s.start, s.end);
    EXPECT_LE(s.end, 36.0);
    EXPECT_TRUE(mmserve::is_valid_utf8(s.text)) << s.text;
    EXPECT_EQ(s.seek, 3000);
  }
  // Same input, temperature 0: same output, on the same state and on a fresh one.
  EXPECT_EQ(joined(state.run(task)), joined(first));
  SpeechState other(model);
  EXPECT_EQ(joined(other.run(task)), joined(first));
}

TEST(SpeechState, SampledRunsDoNotLeakIntoTheNextRequest) {
  // whisper.cpp never reseeds a state's first decoder; the state is renewed after sampling, so a
  // request at temperature > 0 gives the same answer whatever ran on the state before.
  const auto model = small_model();
  SpeechState state(model);
  const auto audio = chirps(4.0);
  WindowTask task;
  task.samples = audio;
  task.language = "en";
  task.temperature = 0.8f;
  task.fallback = false;
  task.threads = 2;
  const auto first = joined(state.run(task));
  EXPECT_EQ(joined(state.run(task)), first);
}

TEST(SpeechState, StatesRunConcurrentlyOnOneModel) {
  const auto model = small_model();
  const auto audio = chirps(5.0);
  WindowTask task;
  task.samples = audio;
  task.language = "en";
  task.threads = 1;
  const std::string expected = joined(SpeechState(model).run(task));
  std::vector<std::string> got(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      SpeechState state(model);
      got[i] = joined(state.run(task));
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

TEST(SpeechState, AnAbortedWindowThrowsCancelled) {
  const auto model = small_model();
  SpeechState state(model);
  const auto audio = chirps(3.0);
  std::atomic<bool> abort{true};
  WindowTask task;
  task.samples = audio;
  task.abort = &abort;
  try {
    state.run(task);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
  }
  abort = false;
  EXPECT_NO_THROW(state.run(task));  // the state still works
}

TEST(SpeechState, TranscribesJfkWithWordTimestamps) {
  const std::string jfk = mmserve::testing::shared_path("media/jfk.wav");
  MMSERVE_REQUIRE_SHARED(jfk);
  const auto audio = media::decode_audio_file(jfk, {});
  SpeechState state(small_model());
  WindowTask task;
  task.samples = audio.samples;
  task.word_timestamps = true;
  task.threads = 2;
  const auto r = state.run(task);
  EXPECT_FALSE(r.language.empty());  // detected
  size_t words = 0;
  for (const auto& s : r.segments) {
    for (const auto& w : s.words) {
      EXPECT_GE(w.start, s.start);
      EXPECT_LE(w.start, w.end);
      EXPECT_LE(w.end, s.end);
      EXPECT_GT(w.probability, 0.0);
      ++words;
    }
  }
  EXPECT_GT(words, 0u);
}

}  // namespace
}  // namespace mmserve::engine
