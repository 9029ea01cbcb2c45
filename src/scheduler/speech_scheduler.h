// The speech scheduler: a pool of whisper states (--speech-parallel) shared by every
// transcription in flight, scheduled by what finishes first.
//
// A request's audio is cut into windows of at most 30 s (at quiet points, or around speech when
// a VAD model is loaded). A request's windows run in order, one at a time, each conditioned on
// the previous window's text, as Whisper itself works. Whenever a state is free it takes the
// next window of the request with the least audio left (shortest remaining first: a burst of
// clips finishes shortest first, which minimises their mean latency), less an aging credit: every
// second of audio other requests' windows take while a request waits counts as `aging` (0.25)
// seconds less of its own, and the credit is spent when it is served. So a long request is never
// starved by a stream of short ones, and a short request that arrives while a long one runs
// waits for that window only (unless an older request has waited long enough to outrank it).
// Ties go to the request not served yet, then to the first to arrive.
//
// CPU threads: the scheduler has a budget (all of --threads while no text model has work, its
// share beside one that has: cpu_share.h) and a minimum per window
// (--speech-window-threads): at most budget / minimum windows run at once, so each runs at the
// speed its threads give rather than all crawling on a fraction of a core. A window that starts
// gets the budget divided by the windows about to run (running, itself, and those waiting for a
// free state, within that limit), but no more than the running windows leave free. A window
// keeps its count until it ends (whisper.cpp fixes it per call), so a request arriving while
// another holds the whole budget starts when that window ends.
//
// Deadlines and cancellation: SpeechJob::wait() enforces the deadline; cancel() (client gone,
// shutdown) stops a running window within one ggml graph and drops the rest.
//
// Ownership: owns its runners (whisper states) and worker threads; jobs are shared with
// submitters. Threading: every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_annotations.h"
#include "engine/speech_model.h"
#include "engine/speech_state.h"
#include "engine/speech_transcript.h"
#include "engine/speech_windows.h"
#include "scheduler/cpu_share.h"

namespace mmserve::scheduler {

struct SpeechRequest {
  std::vector<float> samples;  // 16 kHz mono
  std::string language;        // resolved code; "" = detect (from the first window)
  bool translate = false;
  float temperature = 0;  // 0: greedy, with Whisper's fallback to higher temperatures
  bool word_timestamps = false;
  std::vector<int32_t> prompt;  // initial prompt tokens (conditions the first window)
  bool stream = false;          // publish each window's segments as it ends (take_segments)
};

struct SpeechOutcome {
  engine::Transcript transcript;
  int windows = 0;        // windows transcribed
  double queue_ms = 0;    // submitted to its first window starting
  double process_ms = 0;  // first window start to finish
  std::vector<double> window_ms;
  std::vector<int32_t> window_threads;  // CPU threads each window ran with
  bool timed_out = false;
  bool cancelled = false;  // by the client, a shutdown, or the deadline
  // Set exactly when the request did not complete, with its code: kTimeout (deadline),
  // kCancelled (the client went away), kUnavailable (shutdown), or the engine's failure.
  std::optional<Error> error;
};

// The scheduler's mutex and the condition variable its workers wait on, shared with its jobs
// (a job's cancel wakes the workers). Defined here so that the scheduler's members can say they
// are GUARDED_BY(core_->mutex).
struct SpeechSchedulerCore {
  Mutex mutex;
  CondVar wake;
};

class SpeechJob {
 public:
  using Clock = std::chrono::steady_clock;
  explicit SpeechJob(Clock::time_point deadline) : deadline_(deadline) {}

  // Blocks until the outcome is in. At the deadline, cancels the job and reports timed_out.
  const SpeechOutcome& wait();
  // Waits up to `wait` (and at most until the deadline, which cancels the job as wait() does);
  // true when the outcome is in.
  bool wait_for(std::chrono::milliseconds wait);
  bool finished() const;
  // Streaming (SpeechRequest::stream): the segments published after the first `seen`, in order,
  // waiting up to `wait` (and at most until the deadline, which cancels the job as wait() does)
  // for some. `finished` is set when the outcome is in: nothing more will be published.
  std::vector<engine::SpeechSegment> take_segments(size_t seen, std::chrono::milliseconds wait,
                                                   bool& finished);
  // Stops the job soon; its outcome says cancelled, with `why` as its error code (kCancelled:
  // the client went away; kUnavailable: shutdown).
  void cancel(ErrorCode why = ErrorCode::kCancelled);

  // Scheduler side.
  const std::atomic<bool>* abort_flag() const { return &cancelled_; }
  bool cancel_requested() const { return cancelled_.load(); }
  void finish(SpeechOutcome outcome);
  // A window's segments, as it ends (streaming jobs); `language` is the transcript's so far.
  void publish(const std::vector<engine::SpeechSegment>& segments, const std::string& language);
  // The language published with the latest window ("" before the first).
  std::string published_language() const;
  void attach(std::weak_ptr<SpeechSchedulerCore> core);

 private:
  // The deadline passed: cancel, and report timed_out.
  void expire() EXCLUDES(mutex_);

  mutable Mutex mutex_;
  CondVar changed_;
  std::optional<SpeechOutcome> outcome_ GUARDED_BY(mutex_);
  std::vector<engine::SpeechSegment> published_ GUARDED_BY(mutex_);
  std::string published_language_ GUARDED_BY(mutex_);
  std::weak_ptr<SpeechSchedulerCore> core_ GUARDED_BY(mutex_);
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> timed_out_{false};
  std::atomic<ErrorCode> cancel_reason_{ErrorCode::kCancelled};
  const Clock::time_point deadline_;
};

struct SpeechSchedulerOptions {
  int32_t threads = 1;                 // CPU thread budget shared by running windows
  int32_t min_threads_per_window = 2;  // windows run at once: at most threads / this (>= 1)
  double aging = 0.25;      // seconds of credit per second of others' audio run while waiting
  int32_t queue_size = 64;  // requests waiting beyond those running; more are refused (kBusy)
  double window_seconds = engine::kWindowSeconds;
  // Whisper's fallback (re-decode at rising temperatures a window whose decode looks wrong) for
  // requests at temperature 0, as OpenAI's API does; --no-speech-fallback turns it off
  // (whisper-server's --no-fallback): greedy only, and the same time for every window.
  bool fallback = true;
  // When set, the budget is this tenant's grant instead of `threads` (cpu_share.h), read as
  // each window starts.
  std::shared_ptr<CpuShare::Tenant> cpu;
};

struct SpeechStats {
  int32_t running = 0;   // windows being transcribed now
  int32_t active = 0;    // requests admitted and not finished
  int32_t waiting = 0;   // of those, requests with no window running
  int32_t queued = 0;    // of those, requests not started yet (what queue_size bounds)
  int32_t parallel = 0;  // whisper states
  int32_t queue_capacity = 0;
  bool full = false;  // a request submitted now would be refused with kBusy
  uint64_t windows_done = 0;
  uint64_t cancelled = 0;
};

// Called on a worker thread when a request finishes (metrics).
using SpeechObserver = std::function<void(const SpeechOutcome&)>;

class SpeechScheduler {
 public:
  // One worker thread per runner. `vad` may be null (windows at quiet points then).
  SpeechScheduler(std::vector<std::unique_ptr<engine::WindowRunner>> runners,
                  std::shared_ptr<const engine::VadModel> vad, SpeechSchedulerOptions options);
  ~SpeechScheduler();  // cancels everything in flight, then joins the workers
  SpeechScheduler(const SpeechScheduler&) = delete;
  SpeechScheduler& operator=(const SpeechScheduler&) = delete;

  // Plans the windows (running the VAD on this thread) and queues the request. Throws Error:
  // kBusy (queue full), kUnavailable (draining).
  std::shared_ptr<SpeechJob> submit(SpeechRequest request, SpeechJob::Clock::time_point deadline);

  void stop_accepting();
  void cancel_all();
  SpeechStats stats() const;
  void set_observer(SpeechObserver observer);
  bool has_vad() const { return vad_ != nullptr; }

 private:
  struct Active;

  void work(engine::WindowRunner& runner, size_t index);
  // Threads for a window starting now (see the class comment).
  int32_t threads_for_window_locked() const REQUIRES(core_->mutex);
  // The CPU threads running windows may use now (the tenant's grant, or options.threads).
  int32_t budget() const;
  // Tells the CPU share whether requests are in flight.
  void note_busy_locked() REQUIRES(core_->mutex);
  // Windows that may run at once: the budget at its minimum per window, within the states.
  int64_t window_limit() const;
  // Whether another window may start now (the limit, and the threads the running ones leave).
  bool room_for_window_locked() const REQUIRES(core_->mutex);
  // A request submitted now would be refused (kBusy).
  bool queue_full_locked() const REQUIRES(core_->mutex);
  // Finishes requests cancelled while queued, even when every state is busy.
  void reap();
  // The next window to run, or null. Finishes jobs cancelled while waiting.
  Active* pick_locked(std::vector<std::shared_ptr<Active>>& finished) REQUIRES(core_->mutex);
  // The scheduling order: shortest remaining audio less the aging credit, then never served,
  // then arrival.
  bool comes_before(const Active& a, const Active& b) const REQUIRES(core_->mutex);
  void finish(Active& a) EXCLUDES(core_->mutex);

  std::vector<std::unique_ptr<engine::WindowRunner>> runners_;
  std::shared_ptr<const engine::VadModel> vad_;
  const SpeechSchedulerOptions options_;
  std::shared_ptr<SpeechSchedulerCore> core_;
  std::vector<std::shared_ptr<Active>> active_ GUARDED_BY(core_->mutex);
  uint64_t tick_ GUARDED_BY(core_->mutex) = 0;
  int32_t running_ GUARDED_BY(core_->mutex) = 0;
  int32_t threads_in_use_ GUARDED_BY(core_->mutex) = 0;  // by running windows
  bool accepting_ GUARDED_BY(core_->mutex) = true;
  bool stopping_ GUARDED_BY(core_->mutex) = false;
  SpeechObserver observer_ GUARDED_BY(core_->mutex);
  std::vector<size_t> idle_ GUARDED_BY(core_->mutex);  // waiting workers, most recently idle last
  std::atomic<uint64_t> windows_done_{0};
  std::atomic<uint64_t> cancelled_{0};
  std::vector<std::thread> workers_;
  std::thread reaper_;
};

}  // namespace mmserve::scheduler
