#include "privacy/finding.h"

#include <array>

namespace mmserve::privacy {

namespace {

constexpr std::array<const char*, kFindingTypeCount> kNames = {
    "cn_resident_id", "cn_credit_code", "cn_mobile",        "bank_card", "email",
    "ipv4",           "ipv6",           "cn_passport",      "hk_id",     "macau_id",
    "tw_id",          "iban",           "cn_license_plate", "keyword",   "pattern",
    "person_name",    "address",
};

static_assert(static_cast<size_t>(FindingType::kAddress) + 1 == kFindingTypeCount);

}  // namespace

const char* finding_type_name(FindingType type) noexcept {
  const auto index = static_cast<size_t>(type);
  return index < kNames.size() ? kNames[index] : "unknown";
}

std::optional<FindingType> parse_finding_type(std::string_view name) noexcept {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (name == kNames[i]) return static_cast<FindingType>(i);
  }
  return std::nullopt;
}

}  // namespace mmserve::privacy
