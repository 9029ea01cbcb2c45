// A finished transcription and its renderings: plain text, SubRip (SRT), WebVTT, and the JSON
// shapes of OpenAI's transcription API (json, verbose_json). Used by `mmserve transcribe` and by
// the HTTP audio endpoints, so both write the same files. Stateless and thread-safe.
#pragma once

#include <string>
#include <vector>

#include "engine/speech_state.h"

namespace mmserve::engine {

struct Transcript {
  std::string task = "transcribe";  // or "translate"
  std::string language;             // ISO code ("en")
  double duration = 0;              // seconds of audio
  double temperature = 0;           // the request's starting temperature
  std::vector<SpeechSegment> segments;

  // The segments' text joined, without leading or trailing whitespace.
  std::string text() const;
};

enum class TranscriptFormat { kJson, kText, kSrt, kVtt, kVerboseJson };

// Parses "json", "text" (or "txt"), "srt", "vtt", "verbose_json". Throws Error(kInvalidInput,
// field) naming the valid ones.
TranscriptFormat parse_transcript_format(const std::string& name, const std::string& field);
// The HTTP Content-Type of a format.
const char* transcript_content_type(TranscriptFormat format);

// Renders the transcript. `words` adds word timestamps to verbose_json (when segments have them).
std::string render_transcript(const Transcript& t, TranscriptFormat format, bool words = false);

// A transcript streamed segment by segment: next() gives the text to send for each new segment,
// so that what was sent, concatenated, is exactly Transcript::text() of the segments (the
// leading whitespace dropped, trailing whitespace held back until more text follows it). One
// per stream; not thread-safe.
class TranscriptDeltas {
 public:
  std::string next(const SpeechSegment& segment);

 private:
  bool started_ = false;
  std::string held_;  // whitespace after the last text sent
};

// "00:01:02,345" (SRT) or "00:01:02.345" (VTT).
std::string cue_time(double seconds, char millis_separator);

}  // namespace mmserve::engine
