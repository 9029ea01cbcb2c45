// The real Silero VAD (../shared) through whisper.cpp's VAD API.
#include <gtest/gtest.h>

#include "audio_test_support.h"
#include "core/error.h"
#include "engine/speech_model.h"
#include "media/audio_decode.h"
#include "test_support.h"

namespace mmserve::engine {
namespace {

TEST(SpeechVad, FindsTheFourSpeechSegmentsOfJfk) {
  const std::string model =
      mmserve::testing::shared_path("models/for-tests-silero-v6.2.0-ggml.bin");
  const std::string jfk = mmserve::testing::shared_path("media/jfk.wav");
  MMSERVE_REQUIRE_SHARED(model);
  MMSERVE_REQUIRE_SHARED(jfk);
  const auto vad = VadModel::load(model);
  const auto audio = media::decode_audio_file(jfk, {});
  // ../shared/README.md: with whisper.cpp's defaults, about 0.32-2.27, 3.27-4.41, 5.38-7.68 and
  // 8.16-10.62 s.
  VadOptions defaults;
  defaults.max_speech_s = 1e9f;
  const auto spans = vad->detect(audio.samples, defaults);
  const std::vector<SpeechSpan> expected = {
      {0.32, 2.27}, {3.27, 4.41}, {5.38, 7.68}, {8.16, 10.62}};
  ASSERT_EQ(spans.size(), expected.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    EXPECT_NEAR(spans[i].start, expected[i].start, 0.05) << i;
    EXPECT_NEAR(spans[i].end, expected[i].end, 0.05) << i;
  }
  // The server's options (spans split at 29 s) find the same in a short clip, every time.
  const auto again = vad->detect(audio.samples);
  ASSERT_EQ(again.size(), spans.size());
  EXPECT_DOUBLE_EQ(again[2].start, spans[2].start);
}

TEST(SpeechVad, SilenceHasNoSpeechAndBadFilesAreRefused) {
  const std::string model =
      mmserve::testing::shared_path("models/for-tests-silero-v6.2.0-ggml.bin");
  MMSERVE_REQUIRE_SHARED(model);
  const auto vad = VadModel::load(model);
  const std::vector<float> silence(16000 * 3, 0.0f);
  EXPECT_TRUE(vad->detect(silence).empty());
  try {
    VadModel::load(mmserve::testing::small_whisper_model());  // a whisper model, not a VAD
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelLoad);
  }
}

}  // namespace
}  // namespace mmserve::engine
