// The privacy stage: scans the text of every inference call with the detectors
// (privacy/detectors.h), applies the privacy policy (privacy/policy.h: refuse, or keep local)
// and notes what it found on the call, as types and counts, never the values: annotations
// "findings" ("cn_mobile:1,bank_card:2"; empty when none), "rule", "route" and "route_reason".
// Images and audio cannot be scanned here and are noted "unscanned". A dry run
// (Call::dry_run, POST /v1/privacy/scan) also gets one "finding" annotation per finding,
// "TYPE BEGIN END VERIFIED", and writes no audit line.
//
// Routing: this build has no cloud executor yet (issue 13), so every call it lets through runs
// locally and the reason says so. Fail closed: a scan that fails keeps the call local
// ("scan_error").
//
// Policy reload: with a policy file, the stage looks at the file's modification time at most
// once a second and loads it again when it changed; a file that no longer parses is reported on
// stderr and the last good policy stays in force.
//
// Audit: with an audit log, every decision is one line (stages/privacy/audit_log.h): refusals
// when they happen, the others when the request ends (on_finish).
//
// Threading: thread-safe; the policy in force is swapped under a mutex.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_annotations.h"
#include "pipeline/stage.h"
#include "privacy/detectors.h"
#include "privacy/policy.h"
#include "stages/privacy/audit_log.h"

namespace mmserve::stages {

// The text of a call the detectors read: prompt, system message, the text parts of messages.
std::vector<std::string_view> call_texts(const pipeline::Call& call);

// "type:count,..." in a fixed order (FindingType's), empty when there are none.
std::string finding_counts(const std::vector<privacy::Finding>& findings);

struct PrivacyOptions {
  std::string policy_path;  // empty: no rules, no keywords (everything local)
  std::string audit_path;   // empty: no audit log
};

class PrivacyStage : public pipeline::Stage {
 public:
  // Loads the policy and opens the audit log; throws their Error (startup fails on a bad file).
  explicit PrivacyStage(PrivacyOptions options = {});
  std::string_view name() const override { return "privacy"; }
  // Throws Error(kForbidden, "input") when a rule refuses the call.
  void on_request(pipeline::Call& call) const override;
  void on_finish(const pipeline::Call& call, const pipeline::Usage& usage) const noexcept override;

  // The policy in force, with the scan options its keywords make (built once per load).
  struct ActivePolicy {
    privacy::Policy policy;
    privacy::ScanOptions scan;
  };
  // Reloaded first when its file changed.
  std::shared_ptr<const ActivePolicy> policy() const;

 private:
  void audit(const pipeline::Call& call, std::string model, std::string outcome) const noexcept;

  struct Loaded {
    std::shared_ptr<const ActivePolicy> active;
    std::chrono::steady_clock::time_point checked;
    std::filesystem::file_time_type mtime;
  };

  PrivacyOptions options_;
  std::unique_ptr<AuditLog> audit_;
  mutable Mutex mutex_;
  mutable Loaded loaded_ GUARDED_BY(mutex_);
};

}  // namespace mmserve::stages
