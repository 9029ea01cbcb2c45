#include "engine/speech_windows.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mmserve::engine {
namespace {

// The cut point in [from, to): the middle of the quietest 100 ms frame.
size_t quietest_point(std::span<const float> samples, size_t from, size_t to, int sample_rate) {
  const size_t frame = static_cast<size_t>(sample_rate / 10);
  if (to <= from + frame) return to;
  double best = std::numeric_limits<double>::max();
  size_t best_at = to;
  for (size_t start = from; start + frame <= to; start += frame / 2) {
    double energy = 0;
    for (size_t i = start; i < start + frame; ++i) {
      energy += static_cast<double>(samples[i]) * samples[i];
    }
    // Ties go to the later frame: fewer, fuller windows.
    if (energy <= best) {
      best = energy;
      best_at = start + frame / 2;
    }
  }
  return best_at;
}

void split_span(std::span<const float> samples, size_t begin, size_t end, int sample_rate,
                size_t window, std::vector<AudioWindow>& out) {
  const size_t tail = static_cast<size_t>(5 * sample_rate);
  while (end - begin > window) {
    const size_t hard_end = begin + window;
    const size_t cut =
        quietest_point(samples, hard_end - std::min(tail, window / 2), hard_end, sample_rate);
    out.push_back({begin, cut});
    begin = cut;
  }
  if (end > begin) out.push_back({begin, end});
}

}  // namespace

std::vector<AudioWindow> plan_windows(std::span<const float> samples, int sample_rate,
                                      double window_seconds) {
  std::vector<AudioWindow> out;
  const auto window = static_cast<size_t>(window_seconds * sample_rate);
  split_span(samples, 0, samples.size(), sample_rate, std::max<size_t>(window, 1), out);
  return out;
}

std::vector<AudioWindow> plan_windows_vad(std::span<const float> samples, int sample_rate,
                                          const std::vector<SpeechSpan>& speech,
                                          double window_seconds) {
  std::vector<AudioWindow> out;
  const auto window = std::max<size_t>(static_cast<size_t>(window_seconds * sample_rate), 1);
  auto to_sample = [&](double seconds) {
    return std::min(samples.size(),
                    static_cast<size_t>(std::max(0.0, std::round(seconds * sample_rate))));
  };
  size_t group_begin = 0;
  size_t group_end = 0;
  bool open = false;
  for (const auto& span : speech) {
    const size_t b = to_sample(span.start);
    const size_t e = std::max(b, to_sample(span.end));
    if (e == b) continue;
    if (open && e - group_begin <= window) {
      group_end = e;
      continue;
    }
    if (open) split_span(samples, group_begin, group_end, sample_rate, window, out);
    group_begin = b;
    group_end = e;
    open = true;
  }
  if (open) split_span(samples, group_begin, group_end, sample_rate, window, out);
  return out;
}

}  // namespace mmserve::engine
