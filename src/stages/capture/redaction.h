// Redaction for the capture store: every finding of the privacy detectors (privacy/detectors.h)
// in a text is replaced by a typed placeholder, "<CN_ID_1>", "<PHONE_2>", "<BANK_CARD_1>",
// "<EMAIL_1>", numbered per record and type in the order values are first seen: the same value
// gets the same placeholder everywhere in one record (its messages, answer, tool calls), so a
// conversation stays coherent; another record starts again at 1. Overlapping findings (a keyword
// inside an address) become one placeholder, of the first finding's type.
//
// Threading: a Redactor is one record's state: one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "privacy/detectors.h"

namespace mmserve::stages {

// The placeholder's stem of a finding type ("CN_ID" for cn_resident_id).
const char* placeholder_stem(privacy::FindingType type) noexcept;

class Redactor {
 public:
  explicit Redactor(const privacy::ScanOptions& options) : options_(options) {}
  // `text` with each finding replaced by its placeholder.
  std::string redact(std::string_view text);
  // Numbers placeholders after those already in `redacted` ("<PHONE_2>" there: the next phone
  // number is <PHONE_3>): the feedback on a stored record, whose original values are gone, does
  // not reuse its placeholders for other values.
  void continue_after(std::string_view redacted);
  // Values replaced, per finding type name ("cn_resident_id" -> 2), every occurrence counted.
  const std::map<std::string, int64_t>& counts() const { return counts_; }

 private:
  const privacy::ScanOptions& options_;
  std::map<std::string, std::string> placeholders_;  // value -> its placeholder
  std::map<std::string, int> next_;                  // stem -> numbers used
  std::map<std::string, int64_t> counts_;
};

}  // namespace mmserve::stages
