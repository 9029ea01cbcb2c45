// A generated corpus for the privacy detectors: Chinese and English sentences with valid
// identifiers of every type embedded (glued to Chinese characters, full-width, with separators)
// and records holding only look-alikes (wrong check digits, order numbers, dates, prices,
// tracking numbers, versions, times, MAC addresses). The generator makes its identifiers valid
// with its own checksum code, written from the standards and not shared with
// privacy/checksums.cpp, so that the detectors are measured against an independent coding.
//
// Used by the recall/precision test (unit/privacy_corpus_test.cpp) and by the corpus tool
// (tools/privacy_corpus_gen.cpp, JSON lines for the integration tests). A seed always gives the
// same records, in the same order.
//
// Threading: a CorpusGenerator is not thread-safe; use one per thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "privacy/finding.h"

namespace mmserve::privacy_corpus {

// The types the generator plants: the built-in detectors', every type before keyword (the
// configured ones, keywords and any added after them, are not generated).
inline constexpr size_t kCorpusTypes = static_cast<size_t>(privacy::FindingType::kKeyword);

struct Expected {
  privacy::FindingType type;
  size_t begin, end;  // bytes of the record's text
};

struct Record {
  std::string text;
  std::vector<Expected> expected;    // the identifiers embedded in it
  std::vector<std::string> planted;  // expected[i]'s exact bytes: text.substr(begin, end - begin)
};

namespace detail {
class Generator;
}

class CorpusGenerator {
 public:
  explicit CorpusGenerator(unsigned seed);
  ~CorpusGenerator();
  CorpusGenerator(const CorpusGenerator&) = delete;
  CorpusGenerator& operator=(const CorpusGenerator&) = delete;

  // The next record: about 30% look-alikes only (no expected identifier), the rest one valid
  // identifier of a uniformly drawn type, sometimes followed by a look-alike.
  Record next();

 private:
  std::unique_ptr<detail::Generator> generator_;
};

}  // namespace mmserve::privacy_corpus
