#include "stages/privacy/privacy_stage.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "core/error.h"

namespace mmserve::stages {

std::vector<std::string_view> call_texts(const pipeline::Call& call) {
  std::vector<std::string_view> texts;
  if (!call.text.prompt.empty()) {
    texts.push_back(call.text.prompt);
  }
  if (call.text.system) {
    texts.push_back(*call.text.system);
  }
  for (const auto& message : call.text.messages) {
    for (const auto& part : message.parts) {
      if (!part.is_image) {
        texts.push_back(part.value);
      }
    }
  }
  if (!call.speech.prompt.empty()) {
    texts.push_back(call.speech.prompt);
  }
  return texts;
}

std::string finding_counts(const std::vector<privacy::Finding>& findings) {
  std::array<int, privacy::kFindingTypeCount> counts{};
  for (const auto& f : findings) {
    ++counts.at(static_cast<size_t>(f.type));
  }
  std::string out;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts.at(i) > 0) {
      out += out.empty() ? "" : ",";
      out += privacy::finding_type_name(static_cast<privacy::FindingType>(i));
      out += ":" + std::to_string(counts.at(i));
    }
  }
  return out;
}

namespace {

std::shared_ptr<const PrivacyStage::ActivePolicy> activate(privacy::Policy policy) {
  privacy::ScanOptions scan;
  scan.keywords = policy.keywords;
  return std::make_shared<const PrivacyStage::ActivePolicy>(
      PrivacyStage::ActivePolicy{std::move(policy), std::move(scan)});
}

}  // namespace

PrivacyStage::PrivacyStage(PrivacyOptions options) : options_(std::move(options)) {
  Loaded loaded;
  loaded.active =
      activate(options_.policy_path.empty() ? privacy::Policy{}
                                            : privacy::load_policy_file(options_.policy_path));
  loaded.checked = std::chrono::steady_clock::now();
  if (!options_.policy_path.empty()) {
    std::error_code ec;
    loaded.mtime = std::filesystem::last_write_time(options_.policy_path, ec);
  }
  if (!options_.audit_path.empty()) {
    audit_ = std::make_unique<AuditLog>(options_.audit_path);
  }
  MutexLock lock(mutex_);
  loaded_ = std::move(loaded);
}

std::shared_ptr<const PrivacyStage::ActivePolicy> PrivacyStage::policy() const {
  MutexLock lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (options_.policy_path.empty() || now - loaded_.checked < std::chrono::seconds(1)) {
    return loaded_.active;
  }
  loaded_.checked = now;
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(options_.policy_path, ec);
  if (ec || mtime == loaded_.mtime) {
    return loaded_.active;  // unchanged, or gone for a moment (an editor's save): keep it
  }
  loaded_.mtime = mtime;
  try {
    loaded_.active = activate(privacy::load_policy_file(options_.policy_path));
    std::fprintf(stderr, "mmserve: privacy policy %s reloaded (%zu rules)\n",
                 options_.policy_path.c_str(), loaded_.active->policy.rules.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "mmserve: error: privacy policy not reloaded, the last good one stays: %s\n",
                 e.what());
  }
  return loaded_.active;
}

void PrivacyStage::audit(const pipeline::Call& call, std::string model,
                         std::string outcome) const noexcept {
  if (!audit_ || call.dry_run) {
    return;
  }
  const auto value = [&call](std::string_view key) {
    const auto* v = call.annotation(key);
    return v != nullptr ? *v : std::string();
  };
  audit_->write({.request_id = call.request_id,
                 .caller = call.caller.id,
                 .task = runtime::task_name(call.task),
                 .model = std::move(model),
                 .data_class = pipeline::data_class_name(call.data_class),
                 .findings = value("findings"),
                 .rule = value("rule"),
                 .route = value("route"),
                 .outcome = std::move(outcome)});
}

void PrivacyStage::on_finish(const pipeline::Call& call,
                             const pipeline::Usage& usage) const noexcept {
  if (call.operation != pipeline::Operation::kInference || call.annotation("route") == nullptr) {
    return;  // not a call this stage decided (a dry run never finishes)
  }
  audit(call, usage.model, usage.error ? error_code_name(*usage.error) : "ok");
}

void PrivacyStage::on_request(pipeline::Call& call) const {
  if (call.operation != pipeline::Operation::kInference) {
    return;
  }
  const auto current = policy();
  std::vector<privacy::Finding> findings;
  try {
    for (const auto text : call_texts(call)) {
      const auto found = privacy::scan(text, current->scan);
      findings.insert(findings.end(), found.begin(), found.end());
    }
  } catch (const std::exception& e) {
    // Fail closed: the call stays on this machine.
    call.annotate(name(), "scan_error", e.what());
  }
  const std::string counts = finding_counts(findings);
  call.annotate(name(), "findings", counts);
  if (call.dry_run) {
    // Spans for POST /v1/privacy/scan, one annotation each: "TYPE BEGIN END VERIFIED" (byte
    // offsets in the text the call was made of; a dry run has one).
    for (const auto& f : findings) {
      call.annotate(name(), "finding",
                    std::string(privacy::finding_type_name(f.type)) + " " +
                        std::to_string(f.begin) + " " + std::to_string(f.end) + " " +
                        (f.checksum_verified ? "1" : "0"));
    }
  }
  if (call.image || call.audio ||
      std::any_of(call.text.messages.begin(), call.text.messages.end(), [](const auto& m) {
        return std::any_of(m.parts.begin(), m.parts.end(),
                           [](const auto& p) { return p.is_image; });
      })) {
    call.annotate(name(), "unscanned", call.audio ? "audio" : "image");
  }
  const auto decision = current->policy.decide(
      findings,
      {.task = runtime::task_name(call.task), .model = call.model, .caller = call.caller.id});
  call.annotate(name(), "rule", decision.rule);
  if (decision.action == privacy::Action::kRefuse) {
    call.annotate(name(), "route", "refused");
    call.annotate(name(), "route_reason", "the privacy policy's rule '" + decision.rule + "'");
    audit(call, call.model, "refused");
    throw Error(
        ErrorCode::kForbidden,
        "refused by the privacy policy (rule '" + decision.rule + "'): the request holds " + counts,
        "input");
  }
  call.executor = "local";
  call.annotate(name(), "route", "local");
  call.annotate(name(), "route_reason",
                decision.rule == "default" ? "no cloud endpoint is configured"
                                           : "the privacy policy's rule '" + decision.rule + "'");
}

}  // namespace mmserve::stages
