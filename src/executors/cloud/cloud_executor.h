// The cloud executor: runs a text-gen call on an OpenAI-compatible endpoint (CloudOptions),
// for the privacy router's calls that carry no personal data. It streams the endpoint's
// answer into the same scheduler::Generation mailbox the local schedulers fill, so the edge
// answers alike wherever the text came from.
//
// submit(call):
//   1. Eligibility, as a second line of defence behind the router: a text-gen call, no image
//      anywhere, no audio, not data class personal or confidential, the privacy stage's "findings"
//      annotation present and empty, no "scan_error" or "unscanned". Otherwise the call never
//      leaves: it falls back (reason "not_eligible").
//   2. An open circuit breaker (circuit_breaker.h): fall back at once ("breaker_open").
//   3. A worker thread makes the attempts (cloud_call.h): retries on connect errors, timeouts,
//      429 and 5xx with backoff (retry_policy.h), none on other 4xx. submit() blocks until an
//      attempt's response headers say 200, and returns the Submission whose Generation the
//      worker then fills as the answer streams; or until every attempt failed.
//   4. Every attempt failed: falls back ("cloud_failed") when fallback_local and a fallback
//      executor were given, else throws Error(kUnavailable). The same for an open breaker. A
//      call that is not eligible runs locally whatever fallback_local says (kUnavailable only
//      without a fallback executor): keeping it here is the privacy rule, not a cloud failure.
// A fallback annotates the call (stage "cloud": route=local, route_reason, upstream_status:
// the last attempt's HTTP status, "connect_error" or "timeout"; "none" when never contacted),
// sets call.executor = "local", counts mmserve_cloud_fallbacks_total and returns
// fallback->submit(call): call.generation is never consumed here.
//
// A call sent upstream gets annotations upstream_status=200 and cloud_attempts=N, and
// Submission::model is the upstream model. How its Generation ends: stop or length as the
// endpoint said; kCancelled when the client went away (the upstream read is aborted);
// kTimeout past the call's deadline; kUnavailable when the endpoint failed mid-answer or the
// executor was destroyed.
//
// Ownership: owns its options, breaker, workers and their connections; borrows `fallback`
// (the local executor, owned by the pipeline), which must outlive it. The destructor stops
// every upstream read and joins every thread (no detached threads).
//
// Threading: submit() is thread-safe and runs on the request's thread. A supervisor thread
// reaps finished workers and aborts the reads of streaming calls that were cancelled or ran
// past their deadline, so a silent endpoint never holds a cancelled call for read_timeout.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"
#include "executors/cloud/circuit_breaker.h"
#include "executors/cloud/cloud_options.h"
#include "pipeline/executor.h"

namespace mmserve::executors {

struct CloudCall;

class CloudExecutor : public pipeline::Executor {
 public:
  // Throws Error(kInvalidInput) when options.base_url is not an http(s) URL.
  CloudExecutor(CloudOptions options, const pipeline::Executor* fallback);
  ~CloudExecutor() override;
  CloudExecutor(const CloudExecutor&) = delete;
  CloudExecutor& operator=(const CloudExecutor&) = delete;

  std::string_view name() const override { return "cloud"; }
  pipeline::Submission submit(pipeline::Call& call) const override;

  const CloudOptions& options() const { return options_; }
  CircuitBreaker::State breaker_state() const { return breaker_.state(); }

  // Why `call` must not go to a cloud endpoint ("" when it may): step 1 above.
  static std::string ineligibility(const pipeline::Call& call);

 private:
  struct Worker {
    std::shared_ptr<CloudCall> call;
    std::thread thread;
  };

  // Runs the call on the fallback executor, or throws Error(kUnavailable, message) when there
  // is none, or when fallback_local is off (except for "not_eligible").
  pipeline::Submission fall_back(pipeline::Call& call, const std::string& reason,
                                 const std::string& upstream_status,
                                 const std::string& message) const;
  void start_worker(const std::shared_ptr<CloudCall>& call) const EXCLUDES(mutex_);
  void supervise() EXCLUDES(mutex_);

  const CloudOptions options_;
  const Endpoint endpoint_;
  const pipeline::Executor* const fallback_;
  mutable CircuitBreaker breaker_;

  mutable Mutex mutex_;
  mutable CondVar changed_;  // a worker was added, or the executor stops
  mutable std::vector<Worker> workers_ GUARDED_BY(mutex_);
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::thread supervisor_;  // started last in the constructor, joined first in the destructor
};

}  // namespace mmserve::executors
