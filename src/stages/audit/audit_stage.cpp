#include "stages/audit/audit_stage.h"

#include <cstdio>
#include <exception>

#include "store/key_store.h"

namespace mmserve::stages {
namespace {

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kPruneEveryMs = 3'600'000;

}  // namespace

AuditStage::AuditStage(store::AuditStore& log, int retention_days)
    : log_(log), retention_ms_(static_cast<int64_t>(retention_days) * kDayMs) {
  prune_if_due(store::unix_ms_now());
}

void AuditStage::prune_if_due(int64_t now_ms) const noexcept {
  int64_t due = next_prune_ms_.load();
  if (now_ms < due || !next_prune_ms_.compare_exchange_strong(due, now_ms + kPruneEveryMs)) {
    return;  // not yet, or another request is pruning
  }
  try {
    const int64_t deleted = log_.prune(now_ms - retention_ms_);
    if (deleted > 0) {
      std::fprintf(stderr, "mmserve: audit log: %lld rows older than %lld days deleted\n",
                   static_cast<long long>(deleted), static_cast<long long>(retention_ms_ / kDayMs));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mmserve: error: audit log not pruned: %s\n", e.what());
  }
}

void AuditStage::on_complete(const pipeline::Call& call,
                             const pipeline::Completion& completion) const noexcept {
  try {
    std::string key = call.caller.id;
    if (!call.caller.authenticated && call.caller.id == "anonymous" &&
        !call.credentials.bearer.empty()) {
      // A refused key: its public id when it has the shape of one (never the secret).
      key = store::key_id_of(call.credentials.bearer);
    }
    log_.append({.time_ms = completion.started_unix_ms,
                 .request_id = call.request_id,
                 .key = std::move(key),
                 .method = completion.method,
                 .path = call.endpoint,
                 .task = completion.task,
                 .model = completion.usage.model,
                 .route = completion.route,
                 .status = completion.status,
                 .error_type = completion.error_type,
                 .prompt_tokens = completion.usage.prompt_tokens,
                 .completion_tokens = completion.usage.completion_tokens,
                 .audio_seconds = completion.usage.audio_seconds,
                 .duration_ms = completion.duration_ms,
                 .client = completion.client,
                 .charged = call.annotation("charged") != nullptr});
  } catch (const std::exception& e) {
    // The response goes out; the missing row is said loudly.
    std::fprintf(stderr, "mmserve: error: audit row of request %s not written: %s\n",
                 call.request_id.c_str(), e.what());
  }
  prune_if_due(completion.started_unix_ms);
}

}  // namespace mmserve::stages
