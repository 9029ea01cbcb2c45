// The privacy stage: scans the text of every inference call with the detectors
// (privacy/detectors.h), applies the privacy policy (privacy/policy.h) and chooses where the call
// runs: refused, "local" or "cloud" (Call::executor). It notes what it found on the call, as
// types and counts, never the values: annotations "findings" ("cn_mobile:1,bank_card:2"; empty
// when none), "rule", "route" and "route_reason" (a short code, also the metrics' label).
// Images and audio cannot be scanned here and are noted "unscanned". A dry run
// (Call::dry_run, POST /v1/privacy/scan) also gets one "finding" annotation per finding,
// "TYPE BEGIN END VERIFIED", and writes no audit line and no metrics.
//
// Routing, in this order (the first that applies decides; route_reason in quotes):
//   a findings rule that refuses -> 403 ("rule"); any finding -> local ("findings");
//   a scan that failed -> local ("scan_error": fail closed); X-Data-Class or
//   parameters.data_class personal or confidential -> local ("data_class"); the call's route
//   (a route rule of its scope, else the policy's `route`) local -> local ("route_local");
//   no cloud executor -> local ("no_cloud"); not text-gen -> local ("task"); images ->
//   local ("unscanned_media"); route cloud -> cloud ("route_cloud"); route auto -> cloud
//   when at least [overflow] queued requests wait for the local model ("overflow"), else local
//   ("not_saturated"). The cloud executor may still run it here (its fallbacks, noted by it).
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
#include <functional>
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
  bool cloud = false;       // a cloud executor is configured (serve --cloud-url)
  // What the cloud would bill per 1K tokens: the estimate of what local calls saved.
  double price_per_1k_tokens = 0;
};

// How many requests wait for the local model the call names (its scheduler's queue): the
// overflow signal of route "auto". Must be thread-safe and cheap.
using LocalQueueProbe = std::function<int(const pipeline::Call&)>;

class PrivacyStage : public pipeline::Stage {
 public:
  // Loads the policy and opens the audit log; throws their Error (startup fails on a bad file).
  explicit PrivacyStage(PrivacyOptions options = {}, LocalQueueProbe local_queue = {});
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
  struct Route {
    std::string executor;
    std::string_view reason;
  };
  Route route(const pipeline::Call& call, const std::vector<privacy::Finding>& findings,
              const privacy::Policy& policy, privacy::Action action) const;

  struct Loaded {
    std::shared_ptr<const ActivePolicy> active;
    std::chrono::steady_clock::time_point checked;
    std::filesystem::file_time_type mtime;
  };

  PrivacyOptions options_;
  LocalQueueProbe local_queue_;
  std::unique_ptr<AuditLog> audit_;
  mutable Mutex mutex_;
  mutable Loaded loaded_ GUARDED_BY(mutex_);
};

}  // namespace mmserve::stages
