#include "engine/speech_state.h"

#include <whisper.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/utf8.h"
#include "engine/backend.h"

namespace mmserve::engine {
namespace {

// Counts what whisper_full did, from its callbacks (which may run on several threads).
struct RunProbe {
  const std::atomic<bool>* abort = nullptr;
  std::atomic<int> passes{0};       // encoder runs: one per seek inside the window
  std::atomic<int> first_steps{0};  // decoder steps with no token yet: one per decode attempt
};

bool on_encoder_begin(whisper_context*, whisper_state*, void* user) {
  auto* probe = static_cast<RunProbe*>(user);
  probe->passes.fetch_add(1);
  return probe->abort == nullptr || !probe->abort->load();
}

bool on_abort(void* user) {
  const auto* probe = static_cast<const RunProbe*>(user);
  return probe->abort != nullptr && probe->abort->load();
}

void on_logits(whisper_context*, whisper_state*, const whisper_token_data*, int n_tokens, float*,
               void* user) {
  if (n_tokens == 0) static_cast<RunProbe*>(user)->first_steps.fetch_add(1);
}

}  // namespace

SpeechState::SpeechState(std::shared_ptr<const SpeechModel> model) : model_(std::move(model)) {
  reset_state();
}

SpeechState::~SpeechState() {
  if (state_ != nullptr) whisper_free_state(state_);
}

void SpeechState::reset_state() {
  if (state_ != nullptr) whisper_free_state(state_);
  state_ = whisper_init_state(model_->raw());
  if (state_ == nullptr) {
    throw Error(ErrorCode::kModelLoad,
                "cannot allocate a whisper state (out of memory?): " + recent_engine_errors());
  }
}

WindowResult SpeechState::run(const WindowTask& task) {
  if (state_ == nullptr) reset_state();  // a previous reset failed; try again
  whisper_context* ctx = model_->raw();
  const auto started = std::chrono::steady_clock::now();

  whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
  p.n_threads = std::max(1, task.threads);
  // The state may have served another request: never inherit its text, condition on ours only.
  p.no_context = true;
  p.prompt_tokens = task.prompt.empty() ? nullptr : task.prompt.data();
  p.prompt_n_tokens = static_cast<int>(task.prompt.size());
  p.language = task.language.empty() ? "auto" : task.language.c_str();
  p.translate = task.translate;
  p.temperature = task.temperature;
  p.temperature_inc = task.fallback ? 0.2f : 0.0f;
  p.token_timestamps = task.word_timestamps;
  p.max_tokens = task.max_tokens;
  p.print_progress = false;
  p.print_realtime = false;
  p.print_timestamps = false;
  p.print_special = false;

  RunProbe probe;
  probe.abort = task.abort;
  p.encoder_begin_callback = on_encoder_begin;
  p.encoder_begin_callback_user_data = &probe;
  p.abort_callback = on_abort;
  p.abort_callback_user_data = &probe;
  p.logits_filter_callback = on_logits;
  p.logits_filter_callback_user_data = &probe;

  const int rc = whisper_full_with_state(ctx, state_, p, task.samples.data(),
                                         static_cast<int>(task.samples.size()));
  // whisper.cpp seeds the random generator of its first decoder once per state and never again,
  // so a state that sampled (temperature > 0, or a fallback) would make the next request's
  // sampled output depend on this one. Such a state is replaced; greedy-only runs keep theirs.
  const bool sampled = task.temperature > 0 || probe.first_steps.load() > probe.passes.load();
  struct Reset {
    SpeechState* self;
    bool needed;
    ~Reset() {
      if (!needed) return;
      try {
        self->reset_state();
      } catch (const Error&) {
        self->state_ = nullptr;  // run() retries; the scheduler reports the error then
      }
    }
  } reset{this, sampled || rc != 0};

  if (task.abort != nullptr && task.abort->load()) {
    throw Error(ErrorCode::kCancelled, "the transcription was cancelled");
  }
  if (rc != 0) {
    throw Error(ErrorCode::kInternal, "whisper.cpp failed to transcribe (code " +
                                          std::to_string(rc) + "): " + recent_engine_errors());
  }

  WindowResult result;
  result.encoder_passes = probe.passes.load();
  const int lang_id = whisper_full_lang_id_from_state(state_);
  const char* lang = lang_id >= 0 ? whisper_lang_str(lang_id) : nullptr;
  result.language = lang != nullptr ? lang : task.language;
  const double window_end = task.offset + static_cast<double>(task.samples.size()) / 16000.0;
  const whisper_token eot = whisper_token_eot(ctx);
  const int n_segments = whisper_full_n_segments_from_state(state_);
  for (int i = 0; i < n_segments; ++i) {
    SpeechSegment seg;
    // whisper.cpp's times are centiseconds from the window start; a random or confused model
    // may put a timestamp past the audio's end.
    seg.start = std::min(window_end,
                         task.offset + whisper_full_get_segment_t0_from_state(state_, i) / 100.0);
    seg.end = std::clamp(task.offset + whisper_full_get_segment_t1_from_state(state_, i) / 100.0,
                         seg.start, window_end);
    // Byte-level tokens can end a segment inside a character.
    seg.text = sanitize_utf8(whisper_full_get_segment_text_from_state(state_, i));
    seg.no_speech_prob = whisper_full_get_segment_no_speech_prob_from_state(state_, i);
    seg.seek = std::llround(task.offset * 100);
    double logprob_sum = 0;
    SpeechWord word;
    bool in_word = false;
    auto close_word = [&] {
      if (in_word) {
        word.text = sanitize_utf8(word.text);
        seg.words.push_back(std::move(word));
      }
      word = {};
      in_word = false;
    };
    const int n_tokens = whisper_full_n_tokens_from_state(state_, i);
    for (int k = 0; k < n_tokens; ++k) {
      const whisper_token_data data = whisper_full_get_token_data_from_state(state_, i, k);
      if (data.id >= eot) continue;  // timestamps and special tokens
      seg.tokens.push_back(data.id);
      logprob_sum += data.plog;
      if (!task.word_timestamps) continue;
      const std::string piece = whisper_token_to_str(ctx, data.id);
      // A token that starts with a space starts a word (Whisper's byte-level BPE).
      if (!in_word || (!piece.empty() && piece[0] == ' ')) {
        close_word();
        in_word = true;
        word.start = std::clamp(task.offset + data.t0 / 100.0, seg.start, seg.end);
        word.probability = 1.0;
      }
      word.text += piece;
      word.end = std::clamp(task.offset + data.t1 / 100.0, word.start, seg.end);
      word.probability *= data.p;
    }
    close_word();
    if (!seg.tokens.empty()) logprob_sum /= static_cast<double>(seg.tokens.size());
    seg.avg_logprob = logprob_sum;
    result.segments.push_back(std::move(seg));
  }
  result.ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace mmserve::engine
