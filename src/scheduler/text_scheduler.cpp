#include "scheduler/text_scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace mmserve::scheduler {
namespace {

double ms_since(Generation::Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Generation::Clock::now() - t).count();
}

// The typed reason a request was cancelled: its deadline, its client, or the shutdown.
Error why_cancelled(const Generation& generation, const char* when) {
  if (Generation::Clock::now() >= generation.deadline()) {
    return Error(ErrorCode::kTimeout,
                 std::string("the request ran past its deadline (--timeout) ") + when);
  }
  if (generation.cancel_requested()) {
    return Error(ErrorCode::kCancelled,
                 std::string("the request was cancelled by its client (gone or asked) ") + when);
  }
  return Error(ErrorCode::kUnavailable,
               std::string("the server is shutting down; the request was cancelled ") + when);
}

}  // namespace

TextScheduler::TextScheduler(std::unique_ptr<engine::TextBatch> batch, SchedulerOptions options)
    : batch_(std::move(batch)), options_(options) {
  thread_ = std::thread([this] { run(); });
}

TextScheduler::~TextScheduler() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
    accepting_ = false;
  }
  wake_.notify_all();
  thread_.join();
}

int32_t TextScheduler::sequence_capacity() const {
  return std::min(batch_->n_ctx(), batch_->model().n_ctx_train());
}

int32_t TextScheduler::sequence_share() const {
  return std::max(1, std::min(sequence_capacity(), batch_->n_ctx() / batch_->n_parallel()));
}

int32_t TextScheduler::default_max_tokens(size_t prompt_tokens) const {
  const auto prompt = static_cast<int64_t>(prompt_tokens);
  const int64_t in_share = sequence_share() - prompt;
  if (in_share >= std::min<int64_t>(kMinDefaultTokens, sequence_share() / 4)) {
    return static_cast<int32_t>(in_share);
  }
  // The prompt (nearly) fills the share: give it room to answer, within one sequence.
  return static_cast<int32_t>(
      std::max<int64_t>(1, std::min<int64_t>(sequence_capacity() - prompt, kMinDefaultTokens)));
}

bool TextScheduler::queue_full_locked() const {
  // A request that a free slot will take at once does not wait, so it does not count
  // against the queue (this also makes --queue-size 0 mean "never wait").
  const int32_t free_slots = std::max(0, batch_->n_parallel() - running_count_.load());
  return static_cast<int32_t>(queue_.size()) >= options_.queue_size + free_slots;
}

std::shared_ptr<Generation> TextScheduler::submit(engine::GenerationRequest request,
                                                  Generation::Clock::time_point deadline) {
  if (request.max_tokens == 0) request.max_tokens = default_max_tokens(request.prompt.size());
  const int64_t need = static_cast<int64_t>(request.prompt.size()) + request.max_tokens;
  if (need > sequence_capacity()) {
    throw Error(
        ErrorCode::kInvalidInput,
        "prompt (" + std::to_string(request.prompt.size()) + " tokens) plus max_tokens (" +
            std::to_string(request.max_tokens) + ") exceeds the " +
            std::to_string(sequence_capacity()) + "-token context of one sequence",
        request.prompt.size() >= static_cast<size_t>(sequence_capacity()) ? "input" : "max_tokens");
  }
  batch_->validate(request);  // reads only immutable state: safe off the scheduler thread
  auto generation = std::make_shared<Generation>(deadline);
  {
    MutexLock lock(mutex_);
    if (!accepting_) throw Error(ErrorCode::kUnavailable, "the server is shutting down");
    if (queue_full_locked()) {
      throw Error(ErrorCode::kBusy, "the wait queue is full (" +
                                        std::to_string(options_.queue_size) +
                                        " requests); retry later");
    }
    queue_.push_back({std::move(request), generation, Generation::Clock::now()});
  }
  wake_.notify_all();
  return generation;
}

void TextScheduler::probe(std::chrono::milliseconds timeout) {
  engine::GenerationRequest request;
  request.prompt = batch_->model().tokenize("Hello", true, false);
  request.max_tokens = 1;
  request.sampling.temperature = 0;
  request.ignore_eos = true;
  const auto outcome = submit(std::move(request), Generation::Clock::now() + timeout)->wait();
  if (!outcome.ok() || outcome.result.completion_tokens != 1) {
    throw Error(ErrorCode::kModelLoad,
                std::string("the probe decode failed: ") +
                    (outcome.error ? outcome.error->what() : "no token was produced"),
                "model");
  }
}

void TextScheduler::stop_accepting() {
  MutexLock lock(mutex_);
  accepting_ = false;
}

void TextScheduler::cancel_all() {
  {
    MutexLock lock(mutex_);
    cancel_all_ = true;
  }
  wake_.notify_all();
}

SchedulerStats TextScheduler::stats() const {
  SchedulerStats s;
  {
    MutexLock lock(mutex_);
    s.waiting = static_cast<int32_t>(queue_.size());
    s.full = queue_full_locked();
  }
  s.running = running_count_.load();
  s.queue_capacity = options_.queue_size;
  s.kv_usage = kv_usage_.load();
  s.steps = steps_.load();
  s.cancelled = cancelled_.load();
  return s;
}

void TextScheduler::set_step_observer(StepObserver observer) {
  MutexLock lock(mutex_);
  observer_ = std::move(observer);
}

void TextScheduler::set_finish_observer(FinishObserver observer) {
  MutexLock lock(mutex_);
  finish_observer_ = std::move(observer);
}

void TextScheduler::reap_running(bool cancel_everything) {
  const auto now = Generation::Clock::now();
  // Copy: cancel() calls on_finish, which erases from running_.
  const auto snapshot = running_;
  for (const auto& r : snapshot) {
    const bool expired = now >= r.generation->deadline();
    if (cancel_everything || expired || r.generation->cancel_requested()) batch_->cancel(r.id);
  }
}

void TextScheduler::run() {
  for (;;) {
    std::vector<Waiting> admitted;
    std::vector<Waiting> dropped;  // cancelled or expired while waiting
    bool cancel_everything = false;
    StepObserver observer;
    {
      MutexLock lock(mutex_);
      while (!(stopping_ || cancel_all_ || !queue_.empty() || batch_->has_work())) {
        if (options_.cpu) options_.cpu->set_busy(false);  // idle: the others take every thread
        wake_.wait(mutex_);
      }
      if (stopping_) cancel_all_ = true;
      cancel_everything = cancel_all_;
      cancel_all_ = false;
      const auto now = Generation::Clock::now();
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (cancel_everything || it->generation->cancel_requested() ||
            now >= it->generation->deadline()) {
          dropped.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      // First come, first served: a head that does not fit yet holds the others back, so a
      // large request is not starved by a stream of small ones.
      // Reservations of the requests admitted in this pass add up: each must fit beside the
      // running ones and the ones admitted before it.
      int64_t admitted_cells = 0;
      while (!queue_.empty() && batch_->can_start(queue_.front().request, admitted_cells) &&
             static_cast<int32_t>(running_.size() + admitted.size()) < batch_->n_parallel()) {
        admitted_cells += engine::TextBatch::reservation(queue_.front().request);
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      observer = observer_;
      running_finish_observer_ = finish_observer_;
    }

    for (auto& d : dropped) {
      cancelled_.fetch_add(1);
      GenerationOutcome outcome;
      outcome.result.reason = engine::FinishReason::kCancelled;
      outcome.queue_ms = ms_since(d.submitted);
      outcome.error = why_cancelled(*d.generation, "while waiting in the queue");
      if (running_finish_observer_) running_finish_observer_(outcome);
      d.generation->finish(std::move(outcome));
    }

    for (auto& w : admitted) {
      const double queue_ms = ms_since(w.submitted);
      auto generation = w.generation;
      const auto id = batch_->start(
          std::move(w.request),
          {.on_text = [generation](std::string_view text) { generation->push_text(text); },
           .on_finish =
               [this, generation, queue_ms](const engine::SequenceResult& result) {
                 GenerationOutcome outcome{.result = result, .queue_ms = queue_ms};
                 if (result.reason == engine::FinishReason::kCancelled) {
                   outcome.error = why_cancelled(*generation, "while generating");
                 } else if (result.reason == engine::FinishReason::kError) {
                   outcome.error = result.error.value_or(
                       Error(ErrorCode::kInternal, "generation failed in the engine"));
                 }
                 if (result.reason == engine::FinishReason::kCancelled) cancelled_.fetch_add(1);
                 std::erase_if(running_,
                               [&](const Running& r) { return r.generation == generation; });
                 running_count_.store(static_cast<int32_t>(running_.size()));
                 if (running_finish_observer_) running_finish_observer_(outcome);
                 generation->finish(std::move(outcome));
               }});
      running_.push_back({id, std::move(generation)});
    }

    reap_running(cancel_everything);
    running_count_.store(static_cast<int32_t>(running_.size()));
    if (!batch_->has_work()) {
      MutexLock lock(mutex_);
      if (stopping_ && queue_.empty()) return;
      continue;
    }

    if (options_.cpu) {
      options_.cpu->set_busy(true);
      batch_->set_threads(options_.cpu->threads());
    }
    const engine::StepStats step = batch_->step();
    steps_.fetch_add(1);
    running_count_.store(static_cast<int32_t>(running_.size()));
    kv_usage_.store(batch_->kv_usage());
    if (observer) observer(step);
  }
}

}  // namespace mmserve::scheduler
