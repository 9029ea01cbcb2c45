#include "scheduler/speech_scheduler.h"

#include <algorithm>
#include <exception>
#include <thread>

#include "core/error.h"
#include "media/audio_decode.h"

namespace mmserve::scheduler {

namespace {

using Clock = SpeechJob::Clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Whisper conditions a window on at most n_text_ctx / 2 tokens of earlier text (224).
constexpr size_t kContextTokens = 224;

double window_seconds(const engine::AudioWindow& w) {
  return static_cast<double>(w.end - w.begin) / media::kSpeechSampleRate;
}

// Runs one window on a thread of its own, which ends with it. Why: ggml's CPU backend is built
// with OpenMP, and libgomp keeps a team of worker threads for every thread that has run a
// parallel region until that thread exits. Once it manages more threads than there are CPUs it
// cuts its barrier spinning to almost nothing, and each of a graph's ~300 barriers becomes a
// futex sleep and wake-up. One long-lived worker per whisper state (--speech-parallel) kept that
// many teams alive: a burst of four clips on two cores took 4.7 s with four states against 3.5 s
// with one. With a thread per window, only running windows hold teams.
engine::WindowResult run_on_own_thread(engine::WindowRunner& runner,
                                       const engine::WindowTask& task) {
  engine::WindowResult result;
  std::exception_ptr failure;
  std::thread compute([&]() noexcept {
    try {
      result = runner.run(task);
    } catch (...) {
      failure = std::current_exception();
    }
  });
  compute.join();
  if (failure) {
    std::rethrow_exception(failure);
  }
  return result;
}

}  // namespace

// ---- SpeechJob ----

const SpeechOutcome& SpeechJob::wait() {
  MutexLock lock(mutex_);
  if (deadline_ != Clock::time_point::max()) {  // bounded: wait until the deadline, then expire
    while (!outcome_.has_value()) {
      if (changed_.wait_until(mutex_, deadline_) == std::cv_status::timeout) {
        break;
      }
    }
    if (!outcome_.has_value()) {
      lock.unlock();
      expire();
      lock.lock();
    }
  }
  while (!outcome_.has_value()) {
    changed_.wait(mutex_);
  }
  return *outcome_;
}

bool SpeechJob::wait_for(std::chrono::milliseconds wait) {
  MutexLock lock(mutex_);
  const auto until = std::min(deadline_, Clock::now() + wait);
  while (!outcome_.has_value()) {
    if (changed_.wait_until(mutex_, until) == std::cv_status::timeout) {
      break;
    }
  }
  if (outcome_.has_value()) {
    return true;
  }
  if (Clock::now() >= deadline_) {
    lock.unlock();
    expire();
  }
  return false;
}

std::vector<engine::SpeechSegment> SpeechJob::take_segments(size_t seen,
                                                            std::chrono::milliseconds wait,
                                                            bool& finished) {
  MutexLock lock(mutex_);
  const auto until = std::min(deadline_, Clock::now() + wait);
  while (!outcome_.has_value() && published_.size() <= seen) {
    if (changed_.wait_until(mutex_, until) == std::cv_status::timeout) {
      break;
    }
  }
  finished = outcome_.has_value();
  std::vector<engine::SpeechSegment> out;
  if (seen < published_.size()) {
    out.assign(published_.begin() + static_cast<std::ptrdiff_t>(seen), published_.end());
  }
  if (!finished && out.empty() && Clock::now() >= deadline_) {
    lock.unlock();
    expire();
  }
  return out;
}

void SpeechJob::publish(const std::vector<engine::SpeechSegment>& segments,
                        const std::string& language) {
  {
    MutexLock lock(mutex_);
    published_.insert(published_.end(), segments.begin(), segments.end());
    published_language_ = language;
  }
  changed_.notify_all();
}

std::string SpeechJob::published_language() const {
  MutexLock lock(mutex_);
  return published_language_;
}

void SpeechJob::expire() {
  timed_out_.store(true);
  cancel();
}

bool SpeechJob::finished() const {
  MutexLock lock(mutex_);
  return outcome_.has_value();
}

void SpeechJob::cancel(ErrorCode why) {
  if (!cancelled_.load()) cancel_reason_.store(why);  // the first reason given wins
  cancelled_.store(true);
  std::shared_ptr<SpeechSchedulerCore> core;
  {
    MutexLock lock(mutex_);
    core = core_.lock();
  }
  if (core) {
    MutexLock lock(core->mutex);  // so a worker about to wait cannot miss it
    core->wake.notify_all();
  }
}

void SpeechJob::attach(std::weak_ptr<SpeechSchedulerCore> core) {
  MutexLock lock(mutex_);
  core_ = std::move(core);
}

void SpeechJob::finish(SpeechOutcome outcome) {
  {
    MutexLock lock(mutex_);
    outcome.timed_out = timed_out_.load();
    if (outcome.timed_out) {
      outcome.error = Error(ErrorCode::kTimeout, "the transcription ran past its deadline");
    } else if (outcome.cancelled && !outcome.error) {
      outcome.error = cancel_reason_.load() == ErrorCode::kCancelled
                          ? Error(ErrorCode::kCancelled, "the client went away")
                          : Error(ErrorCode::kUnavailable,
                                  "the server is shutting down; the transcription was cancelled");
    }
    outcome_ = std::move(outcome);
  }
  changed_.notify_all();
}

// ---- SpeechScheduler ----

struct SpeechScheduler::Active {
  std::shared_ptr<SpeechJob> job;
  SpeechRequest request;
  std::vector<engine::AudioWindow> windows;
  size_t next = 0;           // the next window to run
  bool running = false;      // one of its windows is running
  uint64_t last_served = 0;  // tick of its last window start; 0 = never served
  uint64_t arrival = 0;
  double remaining_s = 0;  // audio of the windows not run yet
  double credit_s = 0;     // aging: others' audio run while it waited, since it was last served
  std::vector<int32_t> context;  // what the next window is conditioned on
  SpeechOutcome outcome;
  Clock::time_point submitted;
  Clock::time_point started;
};

SpeechScheduler::SpeechScheduler(std::vector<std::unique_ptr<engine::WindowRunner>> runners,
                                 std::shared_ptr<const engine::VadModel> vad,
                                 SpeechSchedulerOptions options)
    : runners_(std::move(runners)),
      vad_(std::move(vad)),
      options_(options),
      core_(std::make_shared<SpeechSchedulerCore>()) {
  if (runners_.empty()) throw Error(ErrorCode::kInternal, "the speech scheduler needs a state");
  for (size_t i = 0; i < runners_.size(); ++i) {
    workers_.emplace_back([this, i] { work(*runners_[i], i); });
  }
  reaper_ = std::thread([this] { reap(); });
}

SpeechScheduler::~SpeechScheduler() {
  {
    MutexLock lock(core_->mutex);
    stopping_ = true;
    accepting_ = false;
  }
  cancel_all();
  for (auto& w : workers_) w.join();
  reaper_.join();
}

std::shared_ptr<SpeechJob> SpeechScheduler::submit(SpeechRequest request,
                                                   Clock::time_point deadline) {
  const std::span<const float> samples(request.samples);
  std::vector<engine::AudioWindow> windows =
      vad_ ? engine::plan_windows_vad(samples, media::kSpeechSampleRate, vad_->detect(samples),
                                      options_.window_seconds)
           : engine::plan_windows(samples, media::kSpeechSampleRate, options_.window_seconds);
  auto job = std::make_shared<SpeechJob>(deadline);
  auto a = std::make_shared<Active>();
  a->job = job;
  a->context = request.prompt;
  a->request = std::move(request);
  a->windows = std::move(windows);
  for (const auto& w : a->windows) a->remaining_s += window_seconds(w);
  a->submitted = Clock::now();
  a->outcome.transcript.language = a->request.language;
  {
    MutexLock lock(core_->mutex);
    if (!accepting_) throw Error(ErrorCode::kUnavailable, "the server is shutting down");
    if (queue_full_locked()) {
      throw Error(ErrorCode::kBusy, "the speech queue is full (" +
                                        std::to_string(options_.queue_size) +
                                        " requests); retry later");
    }
    if (!a->windows.empty()) {
      job->attach(core_);
      a->arrival = ++tick_;
      active_.push_back(a);
      note_busy_locked();
    }
  }
  if (a->windows.empty()) {  // no speech (VAD) or no audio: nothing to run
    a->started = a->submitted;
    finish(*a);
  } else {
    core_->wake.notify_all();
  }
  return job;
}

void SpeechScheduler::stop_accepting() {
  MutexLock lock(core_->mutex);
  accepting_ = false;
}

void SpeechScheduler::cancel_all() {
  std::vector<std::shared_ptr<SpeechJob>> jobs;
  {
    MutexLock lock(core_->mutex);
    for (const auto& a : active_) jobs.push_back(a->job);
  }
  for (const auto& job : jobs) job->cancel(ErrorCode::kUnavailable);
  core_->wake.notify_all();
}

SpeechStats SpeechScheduler::stats() const {
  SpeechStats s;
  {
    MutexLock lock(core_->mutex);
    s.running = running_;
    s.active = static_cast<int32_t>(active_.size());
    s.waiting = static_cast<int32_t>(
        std::count_if(active_.begin(), active_.end(), [](const auto& a) { return !a->running; }));
    s.queued = static_cast<int32_t>(std::count_if(
        active_.begin(), active_.end(), [](const auto& a) { return a->last_served == 0; }));
    s.full = queue_full_locked();
  }
  s.parallel = static_cast<int32_t>(runners_.size());
  s.queue_capacity = options_.queue_size;
  s.windows_done = windows_done_.load();
  s.cancelled = cancelled_.load();
  return s;
}

bool SpeechScheduler::queue_full_locked() const {
  // Requests not started yet, beyond those a free state takes at once (so --queue-size 0
  // means "never wait", as for text).
  const auto queued = std::count_if(active_.begin(), active_.end(),
                                    [](const auto& x) { return x->last_served == 0; });
  const auto free_states = std::max<int64_t>(0, static_cast<int64_t>(runners_.size()) - running_);
  return queued >= options_.queue_size + free_states;
}

void SpeechScheduler::set_observer(SpeechObserver observer) {
  MutexLock lock(core_->mutex);
  observer_ = std::move(observer);
}

SpeechScheduler::Active* SpeechScheduler::pick_locked(std::vector<std::shared_ptr<Active>>& done) {
  Active* best = nullptr;
  for (auto it = active_.begin(); it != active_.end();) {
    Active& a = **it;
    if (!a.running && a.job->cancel_requested()) {
      a.outcome.cancelled = true;
      done.push_back(*it);
      it = active_.erase(it);
      continue;
    }
    if (!a.running && a.next < a.windows.size() && (best == nullptr || comes_before(a, *best))) {
      best = &a;
    }
    ++it;
  }
  if (!done.empty()) note_busy_locked();  // a cancelled request may have been the last
  return best;
}

bool SpeechScheduler::comes_before(const Active& a, const Active& b) const {
  const double score_a = a.remaining_s - options_.aging * a.credit_s;
  const double score_b = b.remaining_s - options_.aging * b.credit_s;
  if (score_a != score_b) return score_a < score_b;
  if ((a.last_served == 0) != (b.last_served == 0)) return a.last_served == 0;
  return a.arrival < b.arrival;
}

int32_t SpeechScheduler::budget() const {
  return options_.cpu ? options_.cpu->threads() : std::max(1, options_.threads);
}

void SpeechScheduler::note_busy_locked() {
  if (options_.cpu) options_.cpu->set_busy(!active_.empty());
}

int64_t SpeechScheduler::window_limit() const {
  const int64_t by_threads =
      std::max<int64_t>(1, budget() / std::max(1, options_.min_threads_per_window));
  return std::min<int64_t>(static_cast<int64_t>(runners_.size()), by_threads);
}

bool SpeechScheduler::room_for_window_locked() const {
  if (running_ == 0) return true;
  return running_ < window_limit() &&
         budget() - threads_in_use_ >= std::max(1, options_.min_threads_per_window);
}

void SpeechScheduler::finish(Active& a) {
  auto& o = a.outcome;
  auto& t = o.transcript;
  t.task = a.request.translate ? "translate" : "transcribe";
  t.duration = static_cast<double>(a.request.samples.size()) / media::kSpeechSampleRate;
  t.temperature = a.request.temperature;
  o.windows = static_cast<int>(a.next);
  const auto now = Clock::now();
  if (a.last_served == 0) a.started = now;  // never ran: it waited until now
  o.queue_ms = ms_between(a.submitted, a.started);
  o.process_ms = ms_between(a.started, now);
  if (o.cancelled) cancelled_.fetch_add(1);
  SpeechObserver observer;
  {
    MutexLock lock(core_->mutex);
    observer = observer_;
  }
  if (observer) observer(o);
  a.job->finish(std::move(o));
}

int32_t SpeechScheduler::threads_for_window_locked() const {
  // Windows about to run: those running (this one included) and those waiting for a free state.
  const auto waiting = std::count_if(active_.begin(), active_.end(), [](const auto& a) {
    return !a->running && a->next < a->windows.size();
  });
  const auto expected = std::min<int64_t>(window_limit(), running_ + static_cast<int64_t>(waiting));
  const int32_t budget_now = budget();
  const auto share = budget_now / std::max<int64_t>(1, expected);
  // Never more than what running windows leave free (room_for_window_locked keeps that at the
  // minimum or more), but always one.
  return static_cast<int32_t>(
      std::max<int64_t>(1, std::min<int64_t>(share, budget_now - threads_in_use_)));
}

void SpeechScheduler::reap() {
  MutexLock lock(core_->mutex);
  for (;;) {
    std::vector<std::shared_ptr<Active>> dropped;
    pick_locked(dropped);
    if (!dropped.empty()) {
      lock.unlock();
      for (auto& d : dropped) finish(*d);
      lock.lock();
      core_->wake.notify_all();  // the others may be waiting for the queue to empty
      continue;
    }
    if (stopping_ && active_.empty()) return;
    core_->wake.wait(core_->mutex);
  }
}

void SpeechScheduler::work(engine::WindowRunner& runner, size_t index) {
  MutexLock lock(core_->mutex);
  for (;;) {
    // The idle worker that ran last takes the next window: its state's buffers are warm.
    // (Handing work to whichever woke first made back-to-back requests half again slower on a
    // many-state server, when each worker also kept an OpenMP team: see run_on_own_thread.)
    const auto idle_at = std::find(idle_.begin(), idle_.end(), index);
    const bool my_turn = idle_at == idle_.end() || idle_at + 1 == idle_.end();
    std::vector<std::shared_ptr<Active>> dropped;
    Active* picked = my_turn ? pick_locked(dropped) : nullptr;
    if (picked != nullptr && !room_for_window_locked()) {
      picked = nullptr;  // a running window ends first, and wakes the workers
    }
    if (!dropped.empty()) {
      lock.unlock();
      for (auto& d : dropped) finish(*d);
      lock.lock();
      core_->wake.notify_all();  // the others may be waiting for the queue to empty
      continue;
    }
    if (picked == nullptr) {
      if (stopping_ && active_.empty()) return;
      if (idle_at == idle_.end()) idle_.push_back(index);
      core_->wake.wait(core_->mutex);
      continue;
    }
    std::erase(idle_, index);
    core_->wake.notify_all();  // the next idle worker in line may take another window
    // Keep the request alive while its window runs outside the lock.
    std::shared_ptr<Active> a;
    for (const auto& x : active_) {
      if (x.get() == picked) a = x;
    }
    a->running = true;
    if (a->last_served == 0) a->started = Clock::now();
    a->last_served = ++tick_;
    ++running_;
    const engine::AudioWindow w = a->windows[a->next];
    a->credit_s = 0;  // served: its credit is spent
    for (const auto& other : active_) {
      if (other != a && !other->running && other->next < other->windows.size()) {
        other->credit_s += window_seconds(w);  // it waits while this window runs
      }
    }
    engine::WindowTask task;
    task.samples = std::span<const float>(a->request.samples).subspan(w.begin, w.end - w.begin);
    task.offset = static_cast<double>(w.begin) / media::kSpeechSampleRate;
    task.language = a->outcome.transcript.language;
    task.translate = a->request.translate;
    task.temperature = a->request.temperature;
    // OpenAI: fallback only from temperature 0
    task.fallback = options_.fallback && a->request.temperature == 0;
    task.word_timestamps = a->request.word_timestamps;
    task.prompt = a->context;
    task.threads = threads_for_window_locked();
    threads_in_use_ += task.threads;
    task.abort = a->job->abort_flag();
    lock.unlock();

    engine::WindowResult result;
    std::optional<Error> error;
    bool cancelled = false;
    try {
      result = run_on_own_thread(runner, task);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kCancelled) {
        cancelled = true;
      } else {
        error = e;
      }
    } catch (const std::exception& e) {
      error = Error(ErrorCode::kInternal, std::string("speech engine failure: ") + e.what());
    }

    lock.lock();
    --running_;
    threads_in_use_ -= task.threads;
    a->running = false;
    windows_done_.fetch_add(1);
    bool done = false;
    if (cancelled || a->job->cancel_requested()) {
      a->outcome.cancelled = true;
      done = true;
    } else if (error) {
      a->outcome.error = std::move(error);
      done = true;
    } else {
      auto& t = a->outcome.transcript;
      if (t.language.empty()) t.language = result.language;  // detected once, then kept
      a->context.clear();
      if (a->request.stream) {
        a->job->publish(result.segments, t.language);  // before the outcome: never after it
      }
      for (auto& seg : result.segments) {
        a->context.insert(a->context.end(), seg.tokens.begin(), seg.tokens.end());
        t.segments.push_back(std::move(seg));
      }
      if (a->context.size() > kContextTokens) {
        a->context.erase(a->context.begin(), a->context.end() - kContextTokens);
      }
      a->outcome.window_ms.push_back(result.ms);
      a->outcome.window_threads.push_back(task.threads);
      a->remaining_s -= window_seconds(w);
      ++a->next;
      done = a->next == a->windows.size();
    }
    if (done) {
      std::erase(active_, a);
      note_busy_locked();
    }
    core_->wake.notify_all();  // a state is free, and maybe the request's next window is ready
    if (done) {
      lock.unlock();
      finish(*a);
      lock.lock();
    }
  }
}

}  // namespace mmserve::scheduler
