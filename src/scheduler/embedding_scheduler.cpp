#include "scheduler/embedding_scheduler.h"

#include <algorithm>

namespace mmserve::scheduler {
namespace {

using Clock = EmbeddingJob::Clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The typed reason a request was dropped: its deadline, its client, or the shutdown.
Error why_dropped(const EmbeddingJob& job) {
  if (Clock::now() >= job.deadline()) {
    return {ErrorCode::kTimeout, "the request ran past its deadline (--timeout) before embedding"};
  }
  if (job.cancel_requested()) {
    return {ErrorCode::kCancelled, "the request was cancelled by its client (gone or asked)"};
  }
  return {ErrorCode::kUnavailable, "the server is shutting down; the request was cancelled"};
}

}  // namespace

const EmbeddingOutcome& EmbeddingJob::wait() {
  MutexLock lock(mutex_);
  while (!outcome_.has_value()) {
    changed_.wait(mutex_);
  }
  return *outcome_;
}

bool EmbeddingJob::wait_for(std::chrono::milliseconds wait) {
  MutexLock lock(mutex_);
  const auto until = Clock::now() + wait;
  while (!outcome_.has_value()) {
    if (changed_.wait_until(mutex_, until) == std::cv_status::timeout) {
      return outcome_.has_value();
    }
  }
  return true;
}

void EmbeddingJob::finish(EmbeddingOutcome outcome) {
  {
    MutexLock lock(mutex_);
    outcome_ = std::move(outcome);
  }
  changed_.notify_all();
}

EmbeddingScheduler::EmbeddingScheduler(std::unique_ptr<engine::Embedder> embedder,
                                       EmbeddingSchedulerOptions options)
    : embedder_(std::move(embedder)), options_(options) {
  thread_ = std::thread([this] { run(); });
}

EmbeddingScheduler::~EmbeddingScheduler() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
    accepting_ = false;
  }
  wake_.notify_all();
  thread_.join();
}

std::shared_ptr<EmbeddingJob> EmbeddingScheduler::submit(EmbeddingRequest request,
                                                         Clock::time_point deadline) {
  if (request.inputs.empty()) {
    throw Error(ErrorCode::kInvalidInput, "field 'input' has nothing to embed", "input");
  }
  request.fields.resize(request.inputs.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    if (request.fields[i].empty()) {
      request.fields[i] = "input";
    }
    embedder_->validate(request.inputs[i], request.fields[i]);  // immutable state: thread-safe
    tokens += static_cast<int64_t>(request.inputs[i].size());
  }
  auto job = std::make_shared<EmbeddingJob>(deadline);
  {
    MutexLock lock(mutex_);
    if (!accepting_) {
      throw Error(ErrorCode::kUnavailable, "the server is shutting down");
    }
    const int32_t capacity = options_.queue_size + embedder_->max_sequences();
    if (outstanding_.load() >= capacity) {
      throw Error(ErrorCode::kBusy, "the embedding queue is full (" + std::to_string(capacity) +
                                        " requests); retry later");
    }
    outstanding_.fetch_add(1);
    Pending p{.request = std::move(request), .job = job, .submitted = Clock::now()};
    p.outcome.prompt_tokens = tokens;
    queue_.push_back(std::move(p));
  }
  wake_.notify_all();
  return job;
}

void EmbeddingScheduler::probe(const std::vector<engine::Token>& tokens,
                               std::chrono::milliseconds timeout) {
  std::shared_ptr<EmbeddingJob> job;
  try {
    job = submit({.inputs = {tokens}, .fields = {"probe"}}, Clock::now() + timeout);
  } catch (const Error& e) {
    throw Error(ErrorCode::kModelLoad, std::string("the embedding probe failed: ") + e.what(),
                "model");
  }
  const auto& outcome = job->wait();
  if (!outcome.ok() || outcome.vectors.size() != 1 || outcome.vectors[0].empty()) {
    throw Error(ErrorCode::kModelLoad,
                std::string("the embedding probe failed: ") +
                    (outcome.error ? outcome.error->what() : "no vector was produced"),
                "model");
  }
}

void EmbeddingScheduler::stop_accepting() {
  MutexLock lock(mutex_);
  accepting_ = false;
}

void EmbeddingScheduler::cancel_all() {
  {
    MutexLock lock(mutex_);
    cancel_all_ = true;
  }
  wake_.notify_all();
}

EmbeddingStats EmbeddingScheduler::stats() const {
  EmbeddingStats s;
  s.outstanding = outstanding_.load();
  s.running = running_.load();
  s.queue_capacity = options_.queue_size + embedder_->max_sequences();
  s.calls = calls_.load();
  s.inputs = inputs_.load();
  s.cancelled = cancelled_.load();
  return s;
}

void EmbeddingScheduler::set_observer(EmbeddingObserver observer) {
  MutexLock lock(mutex_);
  observer_ = std::move(observer);
}

void EmbeddingScheduler::finish(Pending& p, std::optional<Error> error) {
  if (error) {
    if (error->code() != ErrorCode::kInternal) {
      cancelled_.fetch_add(1);
    }
    p.outcome.vectors.clear();
    p.outcome.error = std::move(error);
  }
  if (!p.started) {
    p.outcome.queue_ms = ms_between(p.submitted, Clock::now());
  }
  if (running_observer_) {
    running_observer_(p.outcome);
  }
  outstanding_.fetch_sub(1);
  p.job->finish(std::move(p.outcome));
  p.job.reset();  // marks it done for the sweep
}

void EmbeddingScheduler::run() {
  const auto max_tokens = static_cast<size_t>(embedder_->batch_tokens());
  const auto max_sequences = static_cast<size_t>(embedder_->max_sequences());
  for (;;) {
    bool cancel_everything = false;
    bool stopping = false;
    {
      MutexLock lock(mutex_);
      while (!(stopping_ || cancel_all_ || !queue_.empty() || !active_.empty())) {
        wake_.wait(mutex_);
      }
      stopping = stopping_;
      cancel_everything = cancel_all_ || stopping_;
      cancel_all_ = false;
      while (!queue_.empty()) {
        active_.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      running_observer_ = observer_;
    }
    const auto now = Clock::now();
    for (auto& p : active_) {
      if (cancel_everything || p.job->cancel_requested() || now >= p.job->deadline()) {
        finish(p, why_dropped(*p.job));
      }
    }
    std::erase_if(active_, [](const Pending& p) { return !p.job; });
    if (active_.empty()) {
      if (stopping) {
        MutexLock lock(mutex_);
        if (queue_.empty()) {
          return;
        }
      }
      continue;
    }

    // First come, first served: inputs in order until the call is full; a request's inputs
    // that do not fit wait for the next call, and so do the requests behind it.
    std::vector<std::vector<engine::Token>> batch;
    std::vector<std::pair<Pending*, size_t>> parts;  // request, inputs taken from it
    size_t tokens = 0;
    bool full = false;
    for (auto& p : active_) {
      size_t taken = 0;
      while (p.next + taken < p.request.inputs.size()) {
        const auto& in = p.request.inputs[p.next + taken];
        if (batch.size() >= max_sequences || tokens + in.size() > max_tokens) {
          full = true;
          break;
        }
        tokens += in.size();
        batch.push_back(in);
        ++taken;
      }
      if (taken > 0) {
        parts.emplace_back(&p, taken);
      }
      if (full) {
        break;
      }
    }
    if (batch.empty()) {
      // Cannot happen for validated inputs (each fits one call); never spin on it.
      finish(active_.front(), Error(ErrorCode::kInternal, "an input does not fit one decode"));
      active_.pop_front();
      continue;
    }
    const auto started = Clock::now();
    for (auto& [p, n] : parts) {
      if (!p->started) {
        p->started = started;
        p->outcome.queue_ms = ms_between(p->submitted, started);
      }
    }
    running_.store(static_cast<int32_t>(parts.size()));
    std::optional<Error> failure;
    std::vector<std::vector<float>> vectors;
    try {
      vectors = embedder_->embed(batch);
      if (vectors.size() != batch.size()) {
        failure = Error(ErrorCode::kInternal, "the engine returned the wrong number of vectors");
      }
    } catch (const Error& e) {
      failure = Error(ErrorCode::kInternal, std::string("embedding failed: ") + e.what());
    } catch (const std::exception& e) {
      failure = Error(ErrorCode::kInternal, std::string("embedding failed: ") + e.what());
    }
    calls_.fetch_add(1);
    running_.store(0);
    const auto ended = Clock::now();
    size_t at = 0;
    for (auto& [p, n] : parts) {
      if (failure) {
        finish(*p, failure);
        continue;
      }
      inputs_.fetch_add(n);
      for (size_t i = 0; i < n; ++i) {
        p->outcome.vectors.push_back(std::move(vectors[at + i]));
      }
      at += n;
      p->next += n;
      if (p->next == p->request.inputs.size()) {
        p->outcome.embed_ms = ms_between(*p->started, ended);
        finish(*p, std::nullopt);
      }
    }
    std::erase_if(active_, [](const Pending& p) { return !p.job; });
  }
}

}  // namespace mmserve::scheduler
