// Audio decoding: every supported format decodes to 16 kHz mono with the right duration and
// pitch; bad input fails with a clear, typed error.
#include "media/audio_decode.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "audio_test_support.h"
#include "core/error.h"
#include "test_support.h"

namespace mmserve {
namespace {

using media::AudioLimits;
using media::decode_audio;
using media::kSpeechSampleRate;

struct Format {
  const char* name;
  const char* container;
  const char* codec;
  int rate;
  int channels;
  const char* expect_codec;
};

void PrintTo(const Format& f, std::ostream* os) {
  *os << f.name;
}

class AudioFormatTest : public ::testing::TestWithParam<Format> {};

// A 3-second 440 Hz tone, encoded with FFmpeg's own encoders into each container we accept.
TEST_P(AudioFormatTest, DecodesToSixteenKilohertzMonoKeepingDurationAndPitch) {
  const Format f = GetParam();
  const auto encoded =
      mmserve::testing::encode_audio(mmserve::testing::tone(440.0, 3.0, f.rate, f.channels), f.rate,
                                     f.channels, f.container, f.codec);
  const auto audio = decode_audio(encoded, {});
  EXPECT_EQ(audio.codec, f.expect_codec);
  EXPECT_EQ(audio.source_channels, f.channels);
  // Lossy codecs add or trim a few milliseconds of priming and padding.
  EXPECT_NEAR(audio.seconds(), 3.0, 0.08) << f.name;
  // One second from the middle: resampling must not move the pitch (a rate mix-up would put
  // it at 440 * 44.1 / 16 or similar).
  const std::span<const float> middle(audio.samples.data() + kSpeechSampleRate, kSpeechSampleRate);
  EXPECT_NEAR(mmserve::testing::dominant_frequency(middle, kSpeechSampleRate, 100, 2000, 1), 440, 2)
      << f.name;
  float peak = 0;
  for (float s : middle) peak = std::max(peak, std::abs(s));
  EXPECT_GT(peak, 0.2f) << f.name;  // not silence, not clipped garbage
  EXPECT_LT(peak, 1.05f) << f.name;
}

INSTANTIATE_TEST_SUITE_P(Formats, AudioFormatTest,
                         ::testing::Values(Format{"wav", "wav", "pcm_s16le", 44100, 2, "pcm_s16le"},
                                           Format{"mp3", "mp3", "libmp3lame", 44100, 2, "mp3float"},
                                           Format{"flac", "flac", "flac", 48000, 1, "flac"},
                                           Format{"ogg_opus", "ogg", "libopus", 48000, 2, "opus"},
                                           Format{"ogg_vorbis", "ogg", "libvorbis", 22050, 1,
                                                  "vorbis"},
                                           Format{"m4a_aac", "ipod", "aac", 44100, 2, "aac"},
                                           Format{"webm_opus", "webm", "libopus", 48000, 1, "opus"},
                                           Format{"adts_aac", "adts", "aac", 32000, 1, "aac"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(AudioDecode, SixteenKilohertzMonoWavPassesThroughUnchanged) {
  const auto samples = mmserve::testing::tone(440.0, 1.0, kSpeechSampleRate, 1);
  const auto audio = decode_audio(mmserve::testing::wav_file(samples, kSpeechSampleRate), {});
  ASSERT_EQ(audio.samples.size(), samples.size());
  for (size_t i = 0; i < samples.size(); i += 997) {
    EXPECT_NEAR(audio.samples[i], samples[i], 1.0 / 16000) << i;
  }
}

void expect_error(std::span<const uint8_t> data, ErrorCode code, const std::string& fragment,
                  const AudioLimits& limits = {}) {
  try {
    decode_audio(data, limits, "file");
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(e.field(), "file");
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

std::vector<uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

TEST(AudioDecode, EmptyInputIsNamed) {
  expect_error({}, ErrorCode::kInvalidInput, "empty");
}

TEST(AudioDecode, TextAndRandomBytesAreNotAudio) {
  expect_error(bytes("this is a text file, not a recording\n"), ErrorCode::kInvalidInput,
               "not audio in a supported format");
  std::vector<uint8_t> noise(4096);
  uint32_t x = 12345;
  for (auto& b : noise) b = static_cast<uint8_t>((x = x * 1664525 + 1013904223) >> 24);
  expect_error(noise, ErrorCode::kInvalidInput, "not audio in a supported format");
}

TEST(AudioDecode, ImagesAreRefusedEvenThoughFfmpegCouldOpenThem) {
  // A GIF header: FFmpeg has a GIF demuxer, but only audio containers are allowed.
  expect_error(bytes("GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01"
                     "\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"),
               ErrorCode::kInvalidInput, "not audio in a supported format");
  const std::string jpeg = mmserve::testing::shared_path("media/test-1.jpeg");
  if (!std::filesystem::exists(jpeg)) GTEST_SKIP() << "needs " << jpeg << " (absent)";
  std::ifstream in(jpeg, std::ios::binary);
  const std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), {});
  expect_error(data, ErrorCode::kInvalidInput, "not audio in a supported format");
}

TEST(AudioDecode, AWavWithoutSamplesSaysSo) {
  expect_error(mmserve::testing::wav_file({}, kSpeechSampleRate), ErrorCode::kInvalidInput,
               "no samples");
}

// A header claiming a rate of gigahertz made the resampler allocate gigabytes (fuzz_audio).
TEST(AudioDecode, SampleRatesOutsideRealAudioAreRefused) {
  const std::vector<float> tone(1600, 0.25f);
  expect_error(mmserve::testing::wav_file(tone, 1'000'000'000), ErrorCode::kInvalidInput,
               "sample rate 1000000000 Hz is outside 1000-384000 Hz");
  expect_error(mmserve::testing::wav_file(tone, 500), ErrorCode::kInvalidInput, "sample rate");
  EXPECT_NO_THROW(decode_audio(mmserve::testing::wav_file(tone, 384000), {}, "file"));
  EXPECT_NO_THROW(decode_audio(mmserve::testing::wav_file(tone, 8000), {}, "file"));
}

TEST(AudioDecode, TruncatedAndDamagedFilesFailOrKeepWhatDecodes) {
  const auto mp3 = mmserve::testing::encode_audio(mmserve::testing::tone(440.0, 2.0, 44100, 1),
                                                  44100, 1, "mp3", "libmp3lame");
  // Cut in the middle: the first half still decodes, as ffmpeg would play it.
  const std::vector<uint8_t> half(mp3.begin(), mp3.begin() + static_cast<long>(mp3.size() / 2));
  const auto audio = decode_audio(half, {});
  EXPECT_GT(audio.seconds(), 0.5);
  EXPECT_LT(audio.seconds(), 1.5);
  // A container header and nothing behind it: no audio to be had.
  const auto ogg = mmserve::testing::encode_audio(mmserve::testing::tone(440.0, 1.0, 48000, 1),
                                                  48000, 1, "ogg", "libopus");
  std::vector<uint8_t> damaged(ogg.begin(), ogg.begin() + 60);
  EXPECT_THROW(decode_audio(damaged, {}), Error);
  try {
    decode_audio(damaged, {}, "file");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << e.what();
  }
}

TEST(AudioDecode, LimitsAnswerPayloadTooLarge) {
  const auto wav = mmserve::testing::wav_file(
      mmserve::testing::tone(440.0, 3.0, kSpeechSampleRate, 1), kSpeechSampleRate);
  expect_error(wav, ErrorCode::kPayloadTooLarge, "--max-audio-bytes", {.max_bytes = 1000});
  expect_error(wav, ErrorCode::kPayloadTooLarge, "--max-audio-seconds", {.max_seconds = 1});
  // A stream whose header does not give the duration is stopped while decoding.
  const auto adts = mmserve::testing::encode_audio(mmserve::testing::tone(440.0, 3.0, 16000, 1),
                                                   16000, 1, "adts", "aac");
  expect_error(adts, ErrorCode::kPayloadTooLarge, "--max-audio-seconds", {.max_seconds = 1});
  EXPECT_NO_THROW(decode_audio(wav, {.max_bytes = wav.size(), .max_seconds = 3.5}));
}

TEST(AudioDecode, MissingFileIsNotFound) {
  try {
    media::decode_audio_file("/nonexistent/recording.wav", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace mmserve
