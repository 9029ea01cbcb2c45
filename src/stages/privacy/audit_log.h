// The privacy audit log: one JSON line per decision of the privacy stage, appended to a file
// (serve --audit-log FILE): when, the request id, the caller, the task and model, the client's
// data class, the finding types and counts (never the values), the rule that decided, the route
// and its reason, the cloud endpoint's status when it was tried, and how the request ended. The
// file is opened for appending only (O_APPEND) and each line is written and flushed whole, so
// concurrent requests never interleave and a crash loses at most the line being written.
//
// Threading: write() is thread-safe.
#pragma once

#include <cstdio>
#include <string>

#include "core/thread_annotations.h"

namespace mmserve::stages {

struct AuditRecord {
  std::string request_id, caller, task, model, data_class;
  std::string findings;  // "type:count,..." as the stage annotates it
  std::string rule, route, route_reason;
  std::string upstream_status;  // the cloud's answer ("200", "503", "timeout"); empty: not tried
  std::string outcome;
};

class AuditLog {
 public:
  // Error(kInvalidInput, "audit-log") when the file cannot be opened for appending.
  explicit AuditLog(const std::string& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  void write(const AuditRecord& record) noexcept;

 private:
  Mutex mutex_;
  std::FILE* file_ GUARDED_BY(mutex_) = nullptr;
};

}  // namespace mmserve::stages
