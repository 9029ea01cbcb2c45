#include "executors/cloud/cloud_executor.h"

#include <algorithm>

#include "core/error.h"
#include "executors/cloud/cloud_call.h"
#include "executors/cloud/upstream_request.h"
#include "metrics/server_metrics.h"

namespace mmserve::executors {
namespace {

// How often the supervisor looks for cancelled calls, and a shutdown re-stops a connection.
constexpr auto kPoll = pipeline::kCancelPoll;

constexpr const char* kStage = "cloud";  // the stage name of this executor's annotations

// Tells the worker of `call` to give up (a waiting submit() left, or the executor stops), waking
// it from a backoff wait.
void abandon(CloudCall& call, bool stopping) {
  {
    MutexLock lock(call.mutex);
    if (stopping) {
      call.stopping.store(true);
    } else {
      call.generation->cancel();
    }
  }
  call.changed.notify_all();
}

}  // namespace

CloudExecutor::CloudExecutor(CloudOptions options, const pipeline::Executor* fallback)
    : options_(std::move(options)),
      endpoint_(parse_endpoint(options_.base_url)),
      fallback_(fallback),
      breaker_(options_.breaker_failures, options_.breaker_cooldown) {
  supervisor_ = std::thread([this] { supervise(); });
}

CloudExecutor::~CloudExecutor() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  supervisor_.join();
  std::vector<Worker> workers;
  {
    MutexLock lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& w : workers) {
    abandon(*w.call, true);
  }
  for (auto& w : workers) {
    // stop() aborts a request in flight; one between two steps of the worker is caught by the
    // next round (the worker checks `stopping` before every attempt and in every read).
    while (!w.call->done.load()) {
      w.call->client->stop();
      MutexLock lock(w.call->mutex);
      w.call->changed.wait_for(w.call->mutex, kPoll);
    }
    w.thread.join();
  }
}

std::string CloudExecutor::ineligibility(const pipeline::Call& call) {
  if (call.task != runtime::Task::kTextGen) {
    return "it is not a text-gen call";
  }
  if (call.image || call.audio) {
    return "it carries media";
  }
  for (const auto& m : call.text.messages) {
    if (std::any_of(m.parts.begin(), m.parts.end(),
                    [](const pipeline::ContentPart& p) { return p.is_image; })) {
      return "a message carries an image";
    }
  }
  // The upstream body carries plain messages: a schema, tools and tool turns stay on the
  // model that applies them.
  if (call.text.format.shapes_answer()) {
    return "it asks for tools or a JSON schema";
  }
  for (const auto& m : call.text.messages) {
    if (m.role == "tool" || !m.tool_calls.empty()) {
      return "its conversation holds tool calls";
    }
  }
  if (call.data_class == pipeline::DataClass::kPersonal ||
      call.data_class == pipeline::DataClass::kConfidential) {
    return std::string("its data class is ") + pipeline::data_class_name(call.data_class);
  }
  const auto* findings = call.annotation("findings");
  if (findings == nullptr) {
    return "its text was not scanned for personal data";
  }
  if (!findings->empty()) {
    return "its text has personal data (" + *findings + ")";
  }
  if (call.annotation("scan_error") != nullptr || call.annotation("unscanned") != nullptr) {
    return "its scan for personal data did not complete";
  }
  return {};
}

pipeline::Submission CloudExecutor::submit(pipeline::Call& call) const {
  if (const auto why = ineligibility(call); !why.empty()) {
    return fall_back(call, "not_eligible", "none", "the call may not leave this machine: " + why);
  }
  auto model = upstream_model(call, options_);
  if (model.empty()) {
    return fall_back(call, "not_eligible", "none",
                     "the call has no cloud model: it names none and the cloud executor has no "
                     "default model");
  }
  if (!breaker_.allow()) {
    return fall_back(call, "breaker_open", "none",
                     "the cloud endpoint failed: its circuit breaker is open after " +
                         std::to_string(options_.breaker_failures) + " failed attempts in a row");
  }
  auto generation = std::make_shared<scheduler::Generation>(pipeline::bounded_deadline(call));
  std::shared_ptr<CloudCall> cloud_call;
  try {
    cloud_call =
        std::make_shared<CloudCall>(endpoint_.origin, endpoint_.chat_path(),
                                    upstream_body(call, model).dump(), model, generation, options_);
    start_worker(cloud_call);
  } catch (...) {
    breaker_.release();  // the attempt it allowed never went out
    throw;
  }

  // Until an attempt got 200, or all failed; a call whose client left or whose deadline passed
  // meanwhile is given up (the worker finishes its attempt and stops).
  CloudCall::Phase phase = CloudCall::Phase::kTrying;
  int attempts = 0;
  std::string status;
  std::string failure;
  while (true) {
    // Read before the phase: the worker sets the phase first, so a worker seen done in kTrying
    // has ended without a word (it could not even record its failure).
    const bool ended = cloud_call->done.load();
    {
      MutexLock lock(cloud_call->mutex);
      if (!ended && cloud_call->phase == CloudCall::Phase::kTrying) {
        cloud_call->changed.wait_for(cloud_call->mutex, kPoll);
      }
      phase = cloud_call->phase;
      attempts = cloud_call->attempts;
      status = cloud_call->last_status;
      failure = cloud_call->failure;
    }
    if (ended && phase == CloudCall::Phase::kTrying) {
      phase = CloudCall::Phase::kFailed;
      failure = "internal error";
    }
    if (phase != CloudCall::Phase::kTrying) {
      break;
    }
    if (call.cancellation->requested()) {
      abandon(*cloud_call, false);
      throw Error(ErrorCode::kCancelled,
                  "the request was cancelled by its client while waiting for the cloud endpoint");
    }
    if (pipeline::Clock::now() >= call.deadline) {
      abandon(*cloud_call, false);
      throw Error(ErrorCode::kTimeout,
                  "the request ran past its deadline (--timeout) while waiting for the cloud "
                  "endpoint");
    }
  }
  call.annotate(kStage, "cloud_attempts", std::to_string(attempts));
  if (phase == CloudCall::Phase::kFailed) {
    return fall_back(call, "cloud_failed", status.empty() ? "connect_error" : status,
                     "the cloud endpoint failed: " + failure + " (" + std::to_string(attempts) +
                         " attempt" + (attempts == 1 ? "" : "s") + ")");
  }
  call.annotate(kStage, "upstream_status", "200");
  pipeline::Submission s;
  s.model = std::move(model);
  s.generation = std::move(generation);
  return s;
}

pipeline::Submission CloudExecutor::fall_back(pipeline::Call& call, const std::string& reason,
                                              const std::string& upstream_status,
                                              const std::string& message) const {
  metrics::server_metrics().routing().record_cloud_fallback(reason);
  call.annotate(kStage, "upstream_status", upstream_status);
  // A call that may not leave runs here whatever fallback_local says: that is not a failure
  // of the cloud, and refusing it would punish the privacy rule.
  if (fallback_ == nullptr || (!options_.fallback_local && reason != "not_eligible")) {
    throw Error(ErrorCode::kUnavailable, message);
  }
  call.annotate(kStage, "route", "local");
  call.annotate(kStage, "route_reason", reason);
  call.executor = std::string(fallback_->name());
  return fallback_->submit(call);
}

void CloudExecutor::start_worker(const std::shared_ptr<CloudCall>& call) const {
  MutexLock lock(mutex_);
  if (stopping_) {
    throw Error(ErrorCode::kUnavailable, "the server is shutting down");
  }
  workers_.reserve(workers_.size() + 1);  // push_back must not throw with a thread running
  workers_.push_back(
      {call, std::thread([this, call] { run_cloud_call(*call, options_, breaker_); })});
  lock.unlock();
  changed_.notify_all();
}

void CloudExecutor::supervise() {
  MutexLock lock(mutex_);
  while (!stopping_) {
    if (workers_.empty()) {
      changed_.wait(mutex_);
      continue;
    }
    changed_.wait_for(mutex_, kPoll);
    std::vector<Worker> finished;
    std::vector<std::shared_ptr<CloudCall>> to_stop;
    for (auto it = workers_.begin(); it != workers_.end();) {
      const auto& c = *it->call;
      if (c.done.load()) {
        finished.push_back(std::move(*it));
        it = workers_.erase(it);
        continue;
      }
      // Only a streaming call: before its headers, stop() could wait on a connect in progress.
      if (c.streaming.load() && (c.generation->cancel_requested() ||
                                 pipeline::Clock::now() >= c.generation->deadline())) {
        to_stop.push_back(it->call);
      }
      ++it;
    }
    if (finished.empty() && to_stop.empty()) {
      continue;
    }
    lock.unlock();
    for (auto& w : finished) {
      w.thread.join();
    }
    for (const auto& c : to_stop) {
      c->client->stop();
    }
    lock.lock();
  }
}

}  // namespace mmserve::executors
