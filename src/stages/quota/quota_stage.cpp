#include "stages/quota/quota_stage.h"

#include <chrono>

#include "core/error.h"
#include "runtime/model_spec.h"
#include "store/key_store.h"

namespace mmserve::stages {
namespace {

constexpr int64_t kDayMs = 86'400'000;

int retry_after_seconds(int64_t reset_ms) {
  return static_cast<int>(std::max<int64_t>(1, (reset_ms + 999) / 1000));
}

int64_t now_ms() {
  return store::unix_ms_now();
}

// The refusal of a call whose window is at its limit (`window_limit`, in the window's units;
// `shown_limit` is what the message says): Retry-After is when the window has room for one more,
// not when it is empty.
Error window_full(RateWindow& window, int64_t now, int64_t window_limit, int64_t shown_limit,
                  const char* what) {
  Error error(ErrorCode::kRateLimited,
              "rate limit: this key's " + std::to_string(shown_limit) + " " + what + " are used");
  error.with_retry_after(retry_after_seconds(window.reset_ms(now, window_limit)));
  return error;
}

}  // namespace

QuotaStage::QuotaStage(const store::AuditStore* history) {
  if (history == nullptr) {
    return;
  }
  const int64_t now = now_ms();
  MutexLock lock(mutex_);
  for (const auto& row : history->query({.since_ms = now - kDayMs})) {
    if (!row.key.starts_with(store::kKeyPrefix)) {
      continue;  // only database keys have quotas
    }
    auto usage = usage_of(row.key);
    if (row.charged) {
      usage->requests.add(row.time_ms, 1);
    }
    const auto ended = row.time_ms + static_cast<int64_t>(row.duration_ms);
    usage->tokens.add(ended, row.prompt_tokens + row.completion_tokens);
    usage->audio_ms.add(ended, static_cast<int64_t>(row.audio_seconds * 1000));
  }
}

std::shared_ptr<QuotaStage::KeyUsage> QuotaStage::usage_of(const std::string& key_id) const {
  auto& slot = keys_[key_id];
  if (!slot) {
    slot = std::make_shared<KeyUsage>();
  }
  return slot;
}

pipeline::RateLimitStatus QuotaStage::status_of(KeyUsage& usage, const RateLimits& limits,
                                                int64_t now) {
  pipeline::RateLimitStatus s;
  if (limits.requests_per_minute > 0) {
    s.limit_requests = limits.requests_per_minute;
    s.remaining_requests =
        std::max<int64_t>(0, limits.requests_per_minute - usage.requests.used(now));
    s.reset_requests_ms = usage.requests.clear_ms(now);
  }
  if (limits.tokens_per_minute > 0) {
    s.limit_tokens = limits.tokens_per_minute;
    s.remaining_tokens = std::max<int64_t>(0, limits.tokens_per_minute - usage.tokens.used(now));
    s.reset_tokens_ms = usage.tokens.clear_ms(now);
  }
  if (limits.audio_seconds_per_day > 0) {
    const int64_t limit_ms = limits.audio_seconds_per_day * 1000;
    s.limit_audio_seconds = limits.audio_seconds_per_day;
    s.remaining_audio_seconds = std::max<int64_t>(0, limit_ms - usage.audio_ms.used(now)) / 1000;
    s.reset_audio_seconds_ms = usage.audio_ms.clear_ms(now);
  }
  return s;
}

void QuotaStage::on_admit(pipeline::Call& call) const {
  const RateLimits& limits = call.caller.limits;
  if (!limits.any()) {
    return;
  }
  const int64_t now = now_ms();
  MutexLock lock(mutex_);
  auto usage = usage_of(call.caller.id);
  if (limits.concurrent_requests > 0 && usage->in_flight >= limits.concurrent_requests) {
    throw Error(ErrorCode::kRateLimited, "rate limit: this key already has " +
                                             std::to_string(usage->in_flight) +
                                             " requests running, its limit of concurrent requests")
        .with_retry_after(1);
  }
  const auto status = status_of(*usage, limits, now);
  if (limits.requests_per_minute > 0 && status.remaining_requests <= 0) {
    call.rate_limit = status;
    throw window_full(usage->requests, now, limits.requests_per_minute, limits.requests_per_minute,
                      "requests per minute");
  }
  if (limits.tokens_per_minute > 0 && status.remaining_tokens <= 0) {
    call.rate_limit = status;
    throw window_full(usage->tokens, now, limits.tokens_per_minute, limits.tokens_per_minute,
                      "tokens per minute");
  }
  usage->requests.add(now, 1);
  call.rate_limit = status_of(*usage, limits, now);
  call.annotate(name(), "charged", "1");
  if (limits.concurrent_requests > 0) {
    ++usage->in_flight;
    // Released when the edge drops the call (the stage outlives every call: the pipeline owns
    // it and outlives the server).
    call.holds.push_back(std::shared_ptr<void>(nullptr, [this, usage](void*) {
      MutexLock release(mutex_);
      --usage->in_flight;
    }));
  }
}

void QuotaStage::on_request(pipeline::Call& call) const {
  const RateLimits& limits = call.caller.limits;
  if (limits.audio_seconds_per_day <= 0 || call.task != runtime::Task::kSpeechTranscribe) {
    return;
  }
  const int64_t now = now_ms();
  MutexLock lock(mutex_);
  auto usage = usage_of(call.caller.id);
  const int64_t limit_ms = limits.audio_seconds_per_day * 1000;
  if (usage->audio_ms.used(now) >= limit_ms) {
    call.rate_limit = status_of(*usage, limits, now);
    throw window_full(usage->audio_ms, now, limit_ms, limits.audio_seconds_per_day,
                      "audio seconds per day");
  }
}

void QuotaStage::on_complete(const pipeline::Call& call,
                             const pipeline::Completion& completion) const noexcept {
  if (!call.caller.limits.any() || call.annotation("charged") == nullptr) {
    return;
  }
  try {
    const int64_t now = now_ms();
    MutexLock lock(mutex_);
    auto usage = usage_of(call.caller.id);
    usage->tokens.add(now, completion.usage.prompt_tokens + completion.usage.completion_tokens);
    usage->audio_ms.add(now, static_cast<int64_t>(completion.usage.audio_seconds * 1000));
  } catch (...) {  // bad_alloc: an uncounted call, never a failed response
  }
}

std::optional<pipeline::RateLimitStatus> QuotaStage::status(const std::string& key_id,
                                                            const RateLimits& limits) const {
  if (!limits.any()) {
    return std::nullopt;
  }
  MutexLock lock(mutex_);
  return status_of(*usage_of(key_id), limits, now_ms());
}

}  // namespace mmserve::stages
