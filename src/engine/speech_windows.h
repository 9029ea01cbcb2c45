// Cutting long audio into windows whisper can take (30 s each), so that long requests are
// scheduled window by window, fairly, beside short ones.
//
// Without VAD: consecutive windows covering all the audio; each cut (but the last) is placed at
// the quietest 100 ms of the window's last 5 s, so a word is rarely split. With VAD spans: the
// silence between speech is skipped; consecutive spans are grouped while the group fits a
// window, so each window starts and ends at the edges of speech.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "engine/speech_model.h"

namespace mmserve::engine {

struct AudioWindow {
  size_t begin = 0;  // sample index, inclusive
  size_t end = 0;    // sample index, exclusive
};

inline constexpr double kWindowSeconds = 30.0;

std::vector<AudioWindow> plan_windows(std::span<const float> samples, int sample_rate,
                                      double window_seconds = kWindowSeconds);

std::vector<AudioWindow> plan_windows_vad(std::span<const float> samples, int sample_rate,
                                          const std::vector<SpeechSpan>& speech,
                                          double window_seconds = kWindowSeconds);

}  // namespace mmserve::engine
