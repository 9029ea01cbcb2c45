// The sensitive-data detectors: one pass over the normalized text (text_normalizer.h) finds
// resident IDs, credit codes, mobile numbers, bank cards, emails, IPv4/IPv6 addresses,
// passports, Hong Kong / Macau / Taiwan IDs, IBANs, license plates and configured keywords,
// each with its byte span in the ORIGINAL text (checksums.h confirms the checksum types); when
// ScanOptions asks for them, person names and addresses too (names_addresses.h).
//
// Why hand-written matchers and no regular-expression library: (1) speed: a single pass that
// dispatches on the character class at each position, with bounded look-ahead, beats running
// a dozen patterns; (2) no ReDoS: every matcher reads a bounded window (at most a few dozen
// code points, 320 for an email), so the work is linear in the text for any input; (3) the
// checksum types need code anyway (check digits, dates, region tables, IIN ranges), and the
// rules that make them work in Chinese text (no word boundaries, full-width forms, separators
// inside numbers, "whole digit runs only") are clearer as code than as patterns. User-configured
// regular expressions will come later with RE2, for its linear-time guarantee.
//
// Rules: a number is a candidate only as a whole run of digits (single spaces or hyphens may
// separate groups; an 18-digit run glued to more digits is no ID); a group glued to an ASCII letter
// (tracking numbers like SF1234567890123), a decimal fraction, a short group glued to ':' '.' '/'
// (times, dates) and digits before '@' (an email's local part) are not part of one. One finding per
// span: when candidates overlap, the stricter type wins (resident ID, credit code, IBAN, HK ID,
// Taiwan ID, bank card, then mobile, email, IPv6, IPv4, passport, Macau ID, plate), then the longer
// span. An 18-digit number with a resident ID's region and birth date but a wrong check digit is
// treated as a mistyped ID and not reported as a bank card. Keywords are reported independently of
// the other findings (they may overlap them): ASCII letters compare case-insensitively and an ASCII
// keyword must not be glued to other ASCII letters or digits; other characters compare exactly. At
// each position only the keywords that start with its character are compared: linear in the text
// for a given list (an Aho-Corasick automaton is the upgrade when lists grow to thousands of
// words).
//
// An all-digit 18-character string valid both as a credit code and as a UnionPay card is a card.
//
// Errors: none for any input (ill-formed UTF-8 included). scan() is a pure function of its
// arguments: thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "privacy/checksums.h"
#include "privacy/finding.h"
#include "privacy/patterns.h"

namespace mmserve::privacy {

struct ScanOptions {
  // Words reported as FindingType::kKeyword (customer names, project code names), UTF-8;
  // normalized like the text (full-width forms fold). Empty strings are ignored.
  std::vector<std::string> keywords;
  // The policy's regular expressions, reported as FindingType::kPattern; null: none.
  std::shared_ptr<const PatternSet> patterns;
  // Latest acceptable birth date of a resident ID; unset: today's date in UTC.
  std::optional<CivilDate> today;
  // The optional tier (names_addresses.h), off by default: heuristics, unlike the types above.
  bool person_names = false;  // FindingType::kPersonName
  bool addresses = false;     // FindingType::kAddress
};

// Findings ordered by begin (keywords, patterns, names and addresses included), at most one
// finding of the built-in types per byte. Keywords, patterns and the optional tier's person names
// and addresses are reported independently of the other findings and may overlap them (a keyword
// inside a name, a name inside an address): each answers its own question about the text, and
// none should hide another (names and addresses do not overlap their own type).
// With a deadline, a scan still running then throws Error(kTimeout) (the privacy stage keeps
// the call local: fail closed).
using ScanDeadline = std::optional<std::chrono::steady_clock::time_point>;
std::vector<Finding> scan(std::string_view text, const ScanOptions& options = {},
                          ScanDeadline deadline = std::nullopt);

}  // namespace mmserve::privacy
