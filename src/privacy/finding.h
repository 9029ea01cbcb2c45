// What a privacy detector reports: the kind of personal data it found and where, as a byte span
// of the original UTF-8 text (never the value itself, so findings can be logged and audited).
// Everything here is a plain value type or a pure function: thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace mmserve::privacy {

enum class FindingType {
  kCnResidentId,    // China resident identity card number (GB 11643)
  kCnCreditCode,    // unified social credit code (GB 32100)
  kCnMobile,        // China mobile number, optionally with +86 / 0086 / 86
  kBankCard,        // payment card number (Luhn, known IIN)
  kEmail,           // local@domain.tld
  kIpv4,            // dotted quad
  kIpv6,            // RFC 4291 text forms
  kCnPassport,      // China passport (format only)
  kHkId,            // Hong Kong identity card (check digit)
  kMacauId,         // Macau resident identity card (format only)
  kTwId,            // Taiwan national identification number (check digit)
  kIban,            // international bank account number (mod 97)
  kCnLicensePlate,  // China vehicle license plate (format only)
  kKeyword,         // a word from the configured keyword lists
  kPattern,         // a match of one of the policy's regular expressions (patterns.h)
  // The optional tier (names_addresses.h): heuristics, off unless the policy turns them on.
  kPersonName,  // a Chinese or English person name, found with a context cue
  kAddress,     // a Chinese or English postal address down to the street and house number
};

// Number of FindingType values, for tables indexed by type.
inline constexpr size_t kFindingTypeCount = 17;

// Stable snake_case name ("cn_resident_id", "bank_card", ...), used in policies, logs, metrics.
const char* finding_type_name(FindingType type) noexcept;

// The type with that exact snake_case name; nullopt for anything else.
std::optional<FindingType> parse_finding_type(std::string_view name) noexcept;

struct Finding {
  FindingType type;
  size_t begin;  // byte offset of the first byte of the identifier in the original UTF-8 text
  size_t end;    // one past its last byte
  bool checksum_verified;  // true exactly when a check digit/character confirmed the type

  friend bool operator==(const Finding&, const Finding&) = default;
};

}  // namespace mmserve::privacy
