#include "stages/privacy/privacy_stage.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "core/error.h"
#include "metrics/server_metrics.h"

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
  if (call.embed) {
    for (const auto& text : call.embed->texts) texts.push_back(text);
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
  scan.patterns = policy.patterns;
  scan.person_names = policy.person_names;
  scan.addresses = policy.addresses;
  return std::make_shared<const PrivacyStage::ActivePolicy>(
      PrivacyStage::ActivePolicy{std::move(policy), std::move(scan)});
}

}  // namespace

PrivacyStage::PrivacyStage(PrivacyOptions options, LocalQueueProbe local_queue)
    : options_(std::move(options)), local_queue_(std::move(local_queue)) {
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
                 .route_reason = value("route_reason"),
                 .upstream_status = value("upstream_status"),
                 .outcome = std::move(outcome)});
}

void PrivacyStage::on_finish(const pipeline::Call& call,
                             const pipeline::Usage& usage) const noexcept {
  const auto* route = call.annotation("route");
  if (call.operation != pipeline::Operation::kInference || route == nullptr) {
    return;  // not a call this stage decided (a dry run never finishes)
  }
  // Where it really ran: the cloud executor notes its fallbacks after this stage's decision.
  const auto* reason = call.annotation("route_reason");
  try {
    auto& metrics = metrics::server_metrics().routing();
    metrics.record_decision(*route, reason != nullptr ? *reason : "");
    if (*route == "local") {
      metrics.record_kept_local(usage.prompt_tokens + usage.completion_tokens,
                                options_.price_per_1k_tokens);
    }
  } catch (...) {  // metrics never fail a request
  }
  audit(call, usage.model, usage.error ? error_code_name(*usage.error) : "ok");
}

namespace {

bool has_media(const pipeline::Call& call) {
  return call.image || call.audio ||
         std::any_of(call.text.messages.begin(), call.text.messages.end(), [](const auto& m) {
           return std::any_of(m.parts.begin(), m.parts.end(),
                              [](const auto& p) { return p.is_image; });
         });
}

}  // namespace

PrivacyStage::Route PrivacyStage::route(const pipeline::Call& call,
                                        const std::vector<privacy::Finding>& findings,
                                        const privacy::Policy& policy,
                                        privacy::Action action) const {
  // Everything that keeps a call here comes first; no client input can skip one of them.
  if (!findings.empty()) {
    return {"local", "findings"};
  }
  if (call.annotation("scan_error") != nullptr) {
    return {"local", "scan_error"};  // fail closed: what the scan missed may be personal
  }
  if (call.data_class == pipeline::DataClass::kPersonal ||
      call.data_class == pipeline::DataClass::kConfidential) {
    return {"local", "data_class"};
  }
  if (action == privacy::Action::kLocal) {
    return {"local", "route_local"};
  }
  if (!options_.cloud) {
    return {"local", "no_cloud"};
  }
  if (!call.caller.scopes.cloud) {
    return {"local", "caller_scope"};  // its key was not given the cloud route
  }
  if (call.task != runtime::Task::kTextGen) {
    return {"local", "task"};
  }
  if (has_media(call)) {
    return {"local", "unscanned_media"};  // images cannot be scanned here
  }
  if (!call.generation.lora_refs.empty()) {
    return {"local", "adapter"};  // a LoRA adapter of a local model: the cloud has none
  }
  if (action == privacy::Action::kCloud) {
    return {"cloud", "route_cloud"};
  }
  // auto: the cloud only when the local model is saturated.
  const int waiting = local_queue_ ? local_queue_(call) : 0;
  if (waiting >= policy.overflow_queued) {
    return {"cloud", "overflow"};
  }
  return {"local", "not_saturated"};
}

void PrivacyStage::on_request(pipeline::Call& call) const {
  if (call.operation != pipeline::Operation::kInference) {
    return;
  }
  const auto current = policy();
  std::vector<privacy::Finding> findings;
  try {
    // One budget for all of the call's texts.
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(current->policy.scan_timeout_ms);
    for (const auto text : call_texts(call)) {
      const auto found = privacy::scan(text, current->scan, deadline);
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
  } else {
    std::array<int64_t, privacy::kFindingTypeCount> by_type{};
    for (const auto& f : findings) {
      ++by_type.at(static_cast<size_t>(f.type));
    }
    for (size_t i = 0; i < by_type.size(); ++i) {
      if (by_type.at(i) > 0) {
        metrics::server_metrics().routing().record_findings(
            privacy::finding_type_name(static_cast<privacy::FindingType>(i)), by_type.at(i));
      }
    }
  }
  if (has_media(call)) {
    call.annotate(name(), "unscanned", call.audio ? "audio" : "image");
  }
  const auto decision = current->policy.decide(
      findings, {.task = runtime::task_name(call.task),
                 .model = call.model,
                 // A database key by its name ("sales-team"), others by their id ("api-key").
                 .caller = call.caller.name.empty() ? call.caller.id : call.caller.name});
  call.annotate(name(), "rule", decision.rule);
  if (decision.action == privacy::Action::kRefuse) {
    call.annotate(name(), "route", "refused");
    call.annotate(name(), "route_reason", "rule");
    if (!call.dry_run) {
      metrics::server_metrics().routing().record_decision("refused", "rule");
    }
    audit(call, call.model, "refused");
    throw Error(
        ErrorCode::kForbidden,
        "refused by the privacy policy (rule '" + decision.rule + "'): the request holds " + counts,
        "input");
  }
  const auto chosen = route(call, findings, current->policy, decision.action);
  call.executor = chosen.executor;
  call.annotate(name(), "route", chosen.executor);
  call.annotate(name(), "route_reason", std::string(chosen.reason));
}

}  // namespace mmserve::stages
