// Window planning: long audio is cut into <= 30 s windows at quiet points, or around speech.
#include "engine/speech_windows.h"

#include <gtest/gtest.h>

#include <cmath>

namespace mmserve::engine {
namespace {

constexpr int kRate = 16000;

std::vector<float> loud(double seconds) {
  std::vector<float> v(static_cast<size_t>(seconds * kRate));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5f * std::sin(0.2f * static_cast<float>(i));
  return v;
}

TEST(SpeechWindows, ShortAudioIsOneWindow) {
  const auto audio = loud(12.5);
  const auto w = plan_windows(audio, kRate);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].begin, 0u);
  EXPECT_EQ(w[0].end, audio.size());
  EXPECT_TRUE(plan_windows(std::span<const float>(), kRate).empty());
}

TEST(SpeechWindows, LongAudioIsCoveredByContiguousWindowsOfAtMostThirtySeconds) {
  const auto audio = loud(95.0);
  const auto w = plan_windows(audio, kRate);
  ASSERT_EQ(w.size(), 4u);
  size_t expect_begin = 0;
  for (const auto& x : w) {
    EXPECT_EQ(x.begin, expect_begin);
    EXPECT_GT(x.end, x.begin);
    EXPECT_LE(x.end - x.begin, static_cast<size_t>(30 * kRate));
    expect_begin = x.end;
  }
  EXPECT_EQ(w.back().end, audio.size());
}

TEST(SpeechWindows, CutsFallInTheQuietestPartOfTheLastFiveSeconds) {
  auto audio = loud(50.0);
  // Silence from 27.0 s to 27.6 s: the cut belongs there, not at 30 s in the middle of a word.
  for (size_t i = 27 * kRate; i < static_cast<size_t>(27.6 * kRate); ++i) audio[i] = 0;
  const auto w = plan_windows(audio, kRate);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_GE(w[0].end, static_cast<size_t>(27.0 * kRate));
  EXPECT_LE(w[0].end, static_cast<size_t>(27.6 * kRate));
  EXPECT_EQ(w[1].begin, w[0].end);
}

TEST(SpeechWindows, VadWindowsSkipSilenceAndGroupSpansThatFit) {
  const auto audio = loud(120.0);
  const std::vector<SpeechSpan> speech = {
      {1.0, 5.0},
      {6.0, 20.0},
      {25.0, 33.0},  // 1..33 is 32 s: the third starts a new window
      {60.0, 70.0},  // after 27 s of silence
      {71.0, 80.0}};
  const auto w = plan_windows_vad(audio, kRate, speech);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].begin, static_cast<size_t>(1 * kRate));
  EXPECT_EQ(w[0].end, static_cast<size_t>(20 * kRate));
  EXPECT_EQ(w[1].begin, static_cast<size_t>(25 * kRate));
  EXPECT_EQ(w[1].end, static_cast<size_t>(33 * kRate));
  EXPECT_EQ(w[2].begin, static_cast<size_t>(60 * kRate));
  EXPECT_EQ(w[2].end, static_cast<size_t>(80 * kRate));
  EXPECT_TRUE(plan_windows_vad(audio, kRate, {}).empty());  // no speech, nothing to transcribe
}

TEST(SpeechWindows, AVadSpanLongerThanAWindowIsSplit) {
  const auto audio = loud(70.0);
  const auto w = plan_windows_vad(audio, kRate, {{2.0, 68.0}});
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w.front().begin, static_cast<size_t>(2 * kRate));
  EXPECT_EQ(w.back().end, static_cast<size_t>(68 * kRate));
  for (const auto& x : w) EXPECT_LE(x.end - x.begin, static_cast<size_t>(30 * kRate));
}

}  // namespace
}  // namespace mmserve::engine
