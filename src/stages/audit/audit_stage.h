// The audit stage: one row in the database's audit log (store/audit_store.h) for every admitted
// request, refused ones included: when, the key, method and path, task, model, route, status,
// tokens, audio seconds, duration and client address; never content. The row is committed in
// on_complete, before the response's last bytes go out, so a request whose client has its answer
// is in the log even if the process is killed right after.
//
// Retention: rows older than `retention_days` are deleted at start-up and then at most once an
// hour, by the request that finds the hour passed.
//
// Threading: thread-safe. Borrows the AuditStore.
#pragma once

#include <atomic>
#include <cstdint>

#include "pipeline/stage.h"
#include "store/audit_store.h"

namespace mmserve::stages {

class AuditStage : public pipeline::Stage {
 public:
  // `retention_days` >= 1 (the quotas read the last day back).
  AuditStage(store::AuditStore& log, int retention_days);
  std::string_view name() const override { return "audit"; }
  void on_complete(const pipeline::Call& call,
                   const pipeline::Completion& completion) const noexcept override;

 private:
  void prune_if_due(int64_t now_ms) const noexcept;

  store::AuditStore& log_;
  int64_t retention_ms_;
  mutable std::atomic<int64_t> next_prune_ms_{0};
};

}  // namespace mmserve::stages
