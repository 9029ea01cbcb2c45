// Quotas per API key (a database key's RateLimits): requests per minute, tokens per minute
// (prompt + completion), audio seconds per day and concurrent requests, each over a sliding
// window. A call over one gets 429 (Error kRateLimited) with Retry-After; every admitted call of
// a key with quotas carries its RateLimitStatus, which the edge sends as OpenAI's
// x-ratelimit-limit-*, -remaining-* and -reset-* headers.
//
//   on_admit: concurrency (a slot held by the call until the edge drops it), then requests,
//     then tokens (admitted while the last minute used fewer than the limit; what a call uses is
//     known when it ends, so concurrent calls may overshoot by their own use, as OpenAI's do);
//     the request is counted here.
//   on_request: audio seconds, for transcriptions.
//   on_complete: the tokens and audio seconds the call used are charged.
//
// Usage lives in the audit log (store/audit_store.h): at construction the windows are rebuilt
// from its last day of rows, so a restart does not reset them. One server per database: two
// servers sharing one file each count only their own calls since they started.
//
// Threading: thread-safe (one lock over the keys' windows, held for microseconds).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/thread_annotations.h"
#include "pipeline/stage.h"
#include "stages/quota/rate_window.h"
#include "store/audit_store.h"

namespace mmserve::stages {

class QuotaStage : public pipeline::Stage {
 public:
  // `history`: the audit log to rebuild usage from; null starts from nothing.
  explicit QuotaStage(const store::AuditStore* history);
  std::string_view name() const override { return "quota"; }
  void on_admit(pipeline::Call& call) const override;
  void on_request(pipeline::Call& call) const override;
  void on_complete(const pipeline::Call& call,
                   const pipeline::Completion& completion) const noexcept override;

  // Where a key stands now (GET /v1/usage); nullopt for a key without quotas.
  std::optional<pipeline::RateLimitStatus> status(const std::string& key_id,
                                                  const RateLimits& limits) const;

 private:
  struct KeyUsage {
    RateWindow requests{60'000};
    RateWindow tokens{60'000};
    RateWindow audio_ms{86'400'000};
    int64_t in_flight = 0;
  };
  std::shared_ptr<KeyUsage> usage_of(const std::string& key_id) const REQUIRES(mutex_);
  static pipeline::RateLimitStatus status_of(KeyUsage& usage, const RateLimits& limits,
                                             int64_t now_ms);

  mutable Mutex mutex_;
  mutable std::map<std::string, std::shared_ptr<KeyUsage>> keys_ GUARDED_BY(mutex_);
};

}  // namespace mmserve::stages
