// One call's run at the cloud endpoint (the cloud executor's worker, cloud_executor.h): its
// attempts, retries and backoff, then the streamed answer decoded into the call's
// scheduler::Generation. Internal to executors/cloud/.
//
// Ownership: a CloudCall is shared (std::shared_ptr) by three threads: submit()'s, which waits
// until `phase` leaves kTrying; its worker, which runs run_cloud_call() and sets `done` as its
// last act; the executor's supervisor, which stops the client of a streaming call that was
// cancelled or ran past its deadline. Threading: the fields marked const are set before the
// worker starts; the rest are atomics or guarded by `mutex`; httplib::Client::stop() is the
// one method of `client` meant to be called from another thread.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

#include "core/thread_annotations.h"
#include "executors/cloud/circuit_breaker.h"
#include "executors/cloud/cloud_options.h"
#include "scheduler/generation.h"

namespace mmserve::executors {

struct CloudCall {
  enum class Phase {
    kTrying,     // attempts under way
    kStreaming,  // an attempt got 200: `generation` is being filled
    kFailed,     // every attempt failed: nothing was produced
  };

  CloudCall(const std::string& origin, std::string path, std::string body, std::string model,
            std::shared_ptr<scheduler::Generation> generation, const CloudOptions& options);

  const std::string path;
  const std::string body;
  const std::string model;
  const std::shared_ptr<scheduler::Generation> generation;
  const std::unique_ptr<httplib::Client> client;

  std::atomic<bool> stopping{false};   // the executor is going away
  std::atomic<bool> streaming{false};  // phase reached kStreaming (read without the mutex)
  std::atomic<bool> done{false};       // the worker has nothing left to do: joining is quick

  Mutex mutex;
  CondVar changed;  // phase changes; stopping or abandonment (for a backoff wait)
  Phase phase GUARDED_BY(mutex) = Phase::kTrying;
  int attempts GUARDED_BY(mutex) = 0;
  // The last attempt's failure, for the call's annotations: the HTTP status ("503"),
  // "connect_error", "timeout" or "bad_response"; and a sentence for errors.
  std::string last_status GUARDED_BY(mutex);
  std::string failure GUARDED_BY(mutex);
};

// The worker: attempts until one gets 200 or retrying is over (options.retries, the breaker,
// the deadline, cancellation), recording each attempt (metrics, `breaker`); then, on 200,
// streams the answer into call.generation and finishes it, however it ends. The first attempt
// must already have been allowed by `breaker`. Never throws.
void run_cloud_call(CloudCall& call, const CloudOptions& options, CircuitBreaker& breaker) noexcept;

}  // namespace mmserve::executors
