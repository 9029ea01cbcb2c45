#include "stages/privacy/privacy_stage.h"

#include <algorithm>
#include <array>

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

void PrivacyStage::on_request(pipeline::Call& call) const {
  if (call.operation != pipeline::Operation::kInference) {
    return;
  }
  std::vector<privacy::Finding> findings;
  try {
    for (const auto text : call_texts(call)) {
      const auto found = privacy::scan(text, options_);
      findings.insert(findings.end(), found.begin(), found.end());
    }
  } catch (const std::exception& e) {
    // Fail closed: the call stays on this machine.
    call.annotate(name(), "scan_error", e.what());
  }
  call.annotate(name(), "findings", finding_counts(findings));
  if (call.image || call.audio ||
      std::any_of(call.text.messages.begin(), call.text.messages.end(), [](const auto& m) {
        return std::any_of(m.parts.begin(), m.parts.end(),
                           [](const auto& p) { return p.is_image; });
      })) {
    call.annotate(name(), "unscanned", call.audio ? "audio" : "image");
  }
  call.executor = "local";
  call.annotate(name(), "route", "local");
  call.annotate(name(), "route_reason", "no cloud endpoint is configured");
}

}  // namespace mmserve::stages
