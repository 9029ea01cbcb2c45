// Helpers for the audio and speech unit tests: tones, encoding them into real files with the
// same FFmpeg libraries the decoder uses, measuring a tone's frequency, and small synthetic
// whisper models.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mmserve::testing {

// A sine tone, interleaved over `channels` (every channel the same), amplitude 0.5.
std::vector<float> tone(double frequency, double seconds, int rate, int channels);

// Encodes interleaved float samples into a file of `container` (an FFmpeg muxer: "wav", "mp3",
// "flac", "ogg", "ipod" for M4A, "webm", "adts") with `codec` (an FFmpeg encoder), in memory.
// The encoder's sample rate is `rate` (the samples' rate) unless the codec needs another
// (Opus: 48 kHz), in which case they are resampled first.
std::vector<uint8_t> encode_audio(const std::vector<float>& interleaved, int rate, int channels,
                                  const std::string& container, const std::string& codec);

// A 16-bit PCM WAV file of mono samples, written by hand (no FFmpeg).
std::vector<uint8_t> wav_file(std::span<const float> mono, int rate);

// The frequency in [lo, hi] with the most energy (Goertzel, `step` Hz apart) over `samples`.
double dominant_frequency(std::span<const float> samples, int rate, double lo, double hi,
                          double step);

// Writes a small synthetic whisper model (2 layers, width 64) to a temporary file once per
// process and returns its path; `english` picks the English-only vocabulary.
const std::string& small_whisper_model(bool english = false);

}  // namespace mmserve::testing
