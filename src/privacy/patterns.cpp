#include "privacy/patterns.h"

#include <re2/re2.h>

#include "core/error.h"

namespace mmserve::privacy {

// Out of line: re2::RE2 is complete here only.
PatternSet::~PatternSet() = default;

std::shared_ptr<const PatternSet> PatternSet::compile(const std::vector<std::string>& patterns,
                                                      const std::string& field) {
  std::shared_ptr<PatternSet> set(new PatternSet());  // private constructor: no make_shared
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);  // bounds the compiled program (and the DFA cache) per pattern
  for (const auto& pattern : patterns) {
    auto re = std::make_unique<RE2>(pattern, options);
    if (!re->ok()) {
      throw Error(ErrorCode::kInvalidInput,
                  "pattern '" + pattern.substr(0, 80) +
                      "' is not a valid regular expression: " + re->error(),
                  field);
    }
    if (RE2::FullMatch("", *re)) {
      throw Error(ErrorCode::kInvalidInput,
                  "pattern '" + pattern.substr(0, 80) +
                      "' matches the empty string: it would flag every request",
                  field);
    }
    set->compiled_.push_back(std::move(re));
  }
  return set;
}

void PatternSet::find(std::string_view text, std::vector<Finding>& out) const {
  for (const auto& re : compiled_) {
    size_t at = 0;
    re2::StringPiece match;
    while (at <= text.size() && re->Match(re2::StringPiece(text.data(), text.size()), at,
                                          text.size(), RE2::UNANCHORED, &match, 1)) {
      const auto begin = static_cast<size_t>(match.data() - text.data());
      const size_t end = begin + match.size();
      if (end > begin) {
        out.push_back({FindingType::kPattern, begin, end, false});
      }
      at = end > begin ? end : begin + 1;  // an empty match (a lookaround-free `a*`) moves on
    }
  }
}

}  // namespace mmserve::privacy
