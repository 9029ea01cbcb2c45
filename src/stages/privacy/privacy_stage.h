// The privacy stage: scans the text of every inference call with the detectors
// (privacy/detectors.h) and notes what it found on the call, as types and counts, never the
// values: annotation "findings" ("cn_mobile:1,bank_card:2"; empty when none), "route" and
// "route_reason". Images and audio cannot be scanned here and are noted "unscanned".
//
// Routing: this machine has no cloud executor yet (issue 13), so every call stays local and the
// reason says so; the cloud policy will decide here, from these findings. Fail closed: a scan
// that fails keeps the call local and is noted "scan_error".
//
// Threading: immutable after construction; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "pipeline/stage.h"
#include "privacy/detectors.h"

namespace mmserve::stages {

// The text of a call the detectors read: prompt, system message, the text parts of messages.
std::vector<std::string_view> call_texts(const pipeline::Call& call);

// "type:count,..." in a fixed order (FindingType's), empty when there are none.
std::string finding_counts(const std::vector<privacy::Finding>& findings);

class PrivacyStage : public pipeline::Stage {
 public:
  explicit PrivacyStage(privacy::ScanOptions options = {}) : options_(std::move(options)) {}
  std::string_view name() const override { return "privacy"; }
  void on_request(pipeline::Call& call) const override;

 private:
  privacy::ScanOptions options_;
};

}  // namespace mmserve::stages
