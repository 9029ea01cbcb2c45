// The policy's own regular expressions (`patterns` in the privacy policy: customer numbers,
// project code names, contract references), reported as findings of type "pattern".
//
// RE2 matches them: it runs in time linear in the text whatever the pattern, so neither a
// careless pattern in the policy file nor a hostile request text can make a scan backtrack
// for seconds (PCRE2, even with its JIT, can); its compiled programs are safe to share between
// threads; Debian packages it. Hyperscan would match many patterns in one pass, but it is
// x86-only and reports start offsets only at extra cost: a policy holds a handful of patterns.
//
// Patterns match the text as sent (UTF-8), not its full-width-folded form: write [0-9０-９]
// where full-width digits may occur.
//
// Threading: immutable once compiled; find() is thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "privacy/finding.h"

namespace re2 {
class RE2;
}

namespace mmserve::privacy {

class PatternSet {
 public:
  // Compiles every pattern (RE2 syntax, UTF-8). Throws Error(kInvalidInput, field) naming the
  // first one RE2 refuses, or one that matches the empty string (it would flag every text).
  static std::shared_ptr<const PatternSet> compile(const std::vector<std::string>& patterns,
                                                   const std::string& field);
  ~PatternSet();
  PatternSet(const PatternSet&) = delete;
  PatternSet& operator=(const PatternSet&) = delete;

  // Appends one kPattern finding per match of each pattern, leftmost-first and
  // non-overlapping within a pattern (byte offsets of `text`).
  void find(std::string_view text, std::vector<Finding>& out) const;
  size_t size() const { return compiled_.size(); }

 private:
  PatternSet() = default;
  std::vector<std::unique_ptr<re2::RE2>> compiled_;
};

}  // namespace mmserve::privacy
