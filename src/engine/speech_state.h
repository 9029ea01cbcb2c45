// One whisper_state: the memory one transcription needs (mel, encoder output, KV caches) over a
// shared SpeechModel. A SpeechState transcribes one window of audio (at most 30 s) at a time;
// the speech scheduler keeps a pool of them so independent requests run at the same time.
//
// Ownership: owns its whisper_state; shares the model. Threading: not thread-safe; one thread
// uses a SpeechState at a time (different states may run concurrently on one model).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/speech_model.h"

struct whisper_state;

namespace mmserve::engine {

struct SpeechWord {
  std::string text;  // with its leading space, as the model wrote it
  double start = 0;  // seconds from the start of the audio
  double end = 0;
  double probability = 0;
};

struct SpeechSegment {
  double start = 0;  // seconds from the start of the audio
  double end = 0;
  std::string text;             // valid UTF-8 (bytes a token split are replaced by U+FFFD)
  std::vector<int32_t> tokens;  // the text tokens, without timestamps and specials
  double avg_logprob = 0;
  double no_speech_prob = 0;
  int64_t seek = 0;               // start of the window it came from, in 10 ms mel frames
  std::vector<SpeechWord> words;  // only when word timestamps were asked for
};

// One window of audio to transcribe, with what to condition on.
struct WindowTask {
  std::span<const float> samples;  // 16 kHz mono, at most 30 s
  double offset = 0;               // where the window starts in the whole audio, seconds
  std::string language;            // a resolved code; "" = detect from this window
  bool translate = false;          // into English
  float temperature = 0;
  bool fallback = true;  // re-decode at rising temperatures when a decode looks wrong (Whisper's
                         // own safeguard against repetition loops)
  bool word_timestamps = false;
  std::vector<int32_t> prompt;  // earlier text to condition on (the previous window, a prompt)
  int threads = 1;
  const std::atomic<bool>* abort = nullptr;  // when it turns true the window stops soon
  int max_tokens = 0;                        // per segment; 0 = no limit (probes use a few)
};

struct WindowResult {
  std::vector<SpeechSegment> segments;
  std::string language;  // the language used (detected when the task had none)
  int encoder_passes = 0;
  double ms = 0;
};

// Runs one window at a time. The scheduler holds a pool of these; tests substitute fakes.
class WindowRunner {
 public:
  virtual ~WindowRunner() = default;
  virtual WindowResult run(const WindowTask& task) = 0;
};

class SpeechState : public WindowRunner {
 public:
  // Allocates the state. Throws Error(kModelLoad) when whisper.cpp cannot.
  explicit SpeechState(std::shared_ptr<const SpeechModel> model);
  ~SpeechState() override;
  SpeechState(const SpeechState&) = delete;
  SpeechState& operator=(const SpeechState&) = delete;

  // Transcribes one window. Throws Error(kCancelled) when task.abort turned true, kInternal when
  // whisper.cpp fails.
  WindowResult run(const WindowTask& task) override;

  const SpeechModel& model() const { return *model_; }

 private:
  void reset_state();

  std::shared_ptr<const SpeechModel> model_;
  whisper_state* state_ = nullptr;
};

}  // namespace mmserve::engine
