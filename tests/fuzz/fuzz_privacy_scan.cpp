// Fuzzes privacy::scan, the detectors the privacy router trusts with every request's text
// (src/privacy/detectors.h), on arbitrary bytes (ill-formed UTF-8 included) with two keywords.
//
// Invariants: no crash, no exception; findings are ordered by begin, each span is non-empty and
// inside the text, and no two non-keyword findings overlap; checksum_verified is set exactly for
// the checksum types; scanning the same text again gives the same findings (a pure function).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "privacy/detectors.h"

namespace {

bool is_checksum_type(mmserve::privacy::FindingType t) {
  using T = mmserve::privacy::FindingType;
  return t == T::kCnResidentId || t == T::kCnCreditCode || t == T::kBankCard || t == T::kHkId ||
         t == T::kTwId || t == T::kIban;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mmserve::privacy::FindingType;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const mmserve::privacy::ScanOptions options{
      .keywords = {"acme", "\xe9\xa1\xb9\xe7\x9b\xae"},  // "acme", "项目"
      .today = mmserve::privacy::CivilDate{2026, 12, 1}};
  const auto findings = mmserve::privacy::scan(text, options);
  size_t last_begin = 0;
  size_t last_end = 0;  // of the previous non-keyword finding
  for (const auto& f : findings) {
    FUZZ_CHECK(f.begin < f.end && f.end <= size);
    FUZZ_CHECK(f.begin >= last_begin);
    last_begin = f.begin;
    if (f.type == FindingType::kKeyword) {
      FUZZ_CHECK(!f.checksum_verified);
      continue;
    }
    FUZZ_CHECK(f.checksum_verified == is_checksum_type(f.type));
    FUZZ_CHECK(f.begin >= last_end);  // at most one non-keyword finding per byte
    last_end = f.end;
  }
  FUZZ_CHECK(mmserve::privacy::scan(text, options) == findings);
  return 0;
}
