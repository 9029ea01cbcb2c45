#include "stages/capture/redaction.h"

#include <algorithm>
#include <vector>

namespace mmserve::stages {

const char* placeholder_stem(privacy::FindingType type) noexcept {
  using privacy::FindingType;
  switch (type) {
    case FindingType::kCnResidentId: return "CN_ID";
    case FindingType::kCnCreditCode: return "CN_CREDIT_CODE";
    case FindingType::kCnMobile: return "PHONE";
    case FindingType::kBankCard: return "BANK_CARD";
    case FindingType::kEmail: return "EMAIL";
    case FindingType::kIpv4:
    case FindingType::kIpv6: return "IP";
    case FindingType::kCnPassport: return "PASSPORT";
    case FindingType::kHkId: return "HK_ID";
    case FindingType::kMacauId: return "MO_ID";
    case FindingType::kTwId: return "TW_ID";
    case FindingType::kIban: return "IBAN";
    case FindingType::kCnLicensePlate: return "PLATE";
    case FindingType::kKeyword: return "KEYWORD";
    case FindingType::kPattern: return "PATTERN";
    case FindingType::kPersonName: return "NAME";
    case FindingType::kAddress: return "ADDRESS";
  }
  return "PII";
}

void Redactor::continue_after(std::string_view text) {
  const auto upper = [](char c) { return (c >= 'A' && c <= 'Z') || c == '_'; };
  for (size_t at = text.find('<'); at != std::string_view::npos; at = text.find('<', at + 1)) {
    size_t i = at + 1;
    while (i < text.size() && upper(text[i])) ++i;
    size_t digits = i;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    // "<STEM_N>": the stem ends with the '_' before the digits.
    if (digits == i || digits >= text.size() || text[digits] != '>' || i - at < 3 ||
        text[i - 1] != '_' || digits - i > 6) {
      continue;
    }
    const std::string stem(text.substr(at + 1, i - at - 2));
    const int n = std::stoi(std::string(text.substr(i, digits - i)));
    int& next = next_[stem];
    next = std::max(next, n);
  }
}

std::string Redactor::redact(std::string_view text) {
  std::vector<privacy::Finding> findings = privacy::scan(text, options_);
  if (findings.empty()) {
    return std::string(text);
  }
  std::sort(findings.begin(), findings.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  // Merged spans, each with the type of its first finding.
  struct Span {
    size_t begin, end;
    privacy::FindingType type;
  };
  std::vector<Span> spans;
  for (const auto& f : findings) {
    if (f.end <= f.begin || f.end > text.size()) continue;
    if (!spans.empty() && f.begin < spans.back().end) {
      spans.back().end = std::max(spans.back().end, f.end);
      continue;
    }
    spans.push_back({f.begin, f.end, f.type});
  }
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  for (const auto& s : spans) {
    out.append(text.substr(at, s.begin - at));
    const std::string value(text.substr(s.begin, s.end - s.begin));
    auto& placeholder = placeholders_[value];
    if (placeholder.empty()) {
      const std::string stem = placeholder_stem(s.type);
      placeholder = "<" + stem + "_" + std::to_string(++next_[stem]) + ">";
    }
    out += placeholder;
    ++counts_[privacy::finding_type_name(s.type)];
    at = s.end;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace mmserve::stages
