#include "privacy/detectors.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "privacy/names_addresses.h"
#include "privacy/text_normalizer.h"

namespace mmserve::privacy {

namespace {

bool is_digit(char32_t c) {
  return c >= U'0' && c <= U'9';
}
bool is_alpha(char32_t c) {
  return (c >= U'A' && c <= U'Z') || (c >= U'a' && c <= U'z');
}
bool is_alnum(char32_t c) {
  return is_digit(c) || is_alpha(c);
}
bool is_hex(char32_t c) {
  return is_digit(c) || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F');
}
char32_t to_upper(char32_t c) {
  return c >= U'a' && c <= U'z' ? c - 32 : c;
}
char32_t to_lower(char32_t c) {
  return c >= U'A' && c <= U'Z' ? c + 32 : c;
}
bool is_email_local(char32_t c) {
  return is_alnum(c) || c == U'.' || c == U'_' || c == U'%' || c == U'+' || c == U'-';
}

constexpr std::u32string_view kPlateProvinces =
    U"京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

// Overlap priority, stricter first: checksum types, then the format-only ones.
int rank(FindingType type) {
  switch (type) {
    case FindingType::kCnResidentId: return 0;
    case FindingType::kCnCreditCode: return 1;
    case FindingType::kIban: return 2;
    case FindingType::kHkId: return 3;
    case FindingType::kTwId: return 4;
    case FindingType::kBankCard: return 5;
    case FindingType::kCnMobile: return 6;
    case FindingType::kEmail: return 7;
    case FindingType::kIpv6: return 8;
    case FindingType::kIpv4: return 9;
    case FindingType::kCnPassport: return 10;
    case FindingType::kMacauId: return 11;
    case FindingType::kCnLicensePlate: return 12;
    case FindingType::kKeyword: return 13;
    case FindingType::kPattern: return 14;
    // The heuristic tier last: should its findings ever compete for a span, any other wins.
    case FindingType::kPersonName: return 15;
    case FindingType::kAddress: return 16;
  }
  return 16;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_mobile(std::string_view d) {
  if (d.size() != 11 || d[0] != '1') return false;
  const char b = d[1];
  const char c = d[2];
  switch (b) {
    case '3':
    case '8': return true;
    case '4': return c == '5' || c == '7' || c == '9';
    case '5':
    case '9': return c != '4';
    case '6': return c == '2' || c == '5' || c == '6' || c == '7';
    case '7': return c != '9';
    default: return false;
  }
}

bool has_card_iin(std::string_view d) {
  const size_t n = d.size();
  if (d.substr(0, 2) == "62") return n >= 16 && n <= 19;
  if (d[0] == '4') return n == 13 || n == 16 || n == 19;
  if (d[0] == '3') return n == 15 && (d[1] == '4' || d[1] == '7');
  if (n != 16) return false;
  const int two = (d[0] - '0') * 10 + (d[1] - '0');
  if (two >= 51 && two <= 55) return true;
  const int four = std::stoi(std::string(d.substr(0, 4)));
  return four >= 2221 && four <= 2720;
}

struct Candidate {
  FindingType type;
  size_t first;  // code point index
  size_t last;   // one past
  bool verified;
};

class Scanner {
 public:
  Scanner(const NormalizedText& text, const ScanOptions& options, ScanDeadline deadline)
      : c_(text.chars), today_(options.today.value_or(today_utc())), deadline_(deadline) {
    for (const std::string& word : options.keywords) {
      std::u32string keyword = normalize_text(word).chars;
      if (keyword.empty()) continue;
      for (char32_t& ch : keyword) ch = to_lower(ch);
      keyword_index_[keyword[0]].push_back(keywords_.size());
      keywords_.push_back(std::move(keyword));
    }
  }

  void run() {
    for (size_t i = 0; i < c_.size(); ++i) {
      if (deadline_ && i % kDeadlineStride == 0 && std::chrono::steady_clock::now() >= *deadline_) {
        throw Error(ErrorCode::kTimeout, "the privacy scan ran out of time (scan_timeout_ms)");
      }
      const char32_t c = c_[i];
      const char32_t p = before(i);
      if (is_digit(c) && !is_digit(p)) {
        const bool continues_run = (p == U' ' || p == U'-') && is_digit(before(i - 1));
        if (!continues_run) digit_run(i);
        ipv4(i);
        macau(i);
      }
      if (is_alnum(c) && !is_alnum(p)) alnum_token(i);
      if (c == U'@') email(i);
      if ((is_hex(c) || c == U':') && !is_alnum(p) && p != U':' && p != U'.') ipv6(i);
      if (kPlateProvinces.find(c) != std::u32string_view::npos) plate(i);
      if (!keywords_.empty()) keywords(i);
    }
  }

  std::vector<Candidate>& candidates() { return candidates_; }
  std::vector<Candidate>& keyword_hits() { return keyword_hits_; }

 private:
  char32_t at(size_t i) const { return i < c_.size() ? c_[i] : 0; }
  char32_t before(size_t i) const { return i == 0 ? 0 : c_[i - 1]; }

  void add(FindingType type, size_t first, size_t last, bool verified) {
    candidates_.push_back({type, first, last, verified});
  }

  // A run of digits, single spaces or hyphens between groups. Candidates are ranges of whole
  // groups, longest first from the leftmost group. A run that has the shape of one identifier
  // (a card IIN and length, a resident ID's region and birth date) but fails its check is a
  // mistyped identifier: it splits only where the separator changes ("2023-12-01 13812345678"),
  // so "6222 0212 3456 7894 123" does not yield the card 6222 0212 3456 7894. Any other run
  // holds several numbers and splits at any separator ("13812345678 2023"). A group glued to a
  // letter (SF1234567890123) is part of a code.
  void digit_run(size_t i) {
    groups_.clear();
    separators_.clear();
    size_t k = i;
    size_t total = 0;
    while (true) {
      const size_t begin = k;
      while (is_digit(at(k))) ++k;
      // A later short group glued to ':' '.' '/' and a digit belongs to a time, a decimal, an
      // address or a date ("...7826 23:59:59"): the run ends before it.
      const char32_t after = at(k);
      if (!groups_.empty() && k - begin <= 4 && (after == U':' || after == U'.' || after == U'/') &&
          is_digit(at(k + 1))) {
        separators_.pop_back();
        break;
      }
      groups_.emplace_back(begin, k);
      total += k - begin;
      if ((at(k) == U' ' || at(k) == U'-') && is_digit(at(k + 1))) {
        separators_.push_back(c_[k]);
        ++k;
        continue;
      }
      break;
    }
    const char32_t p = before(i);
    plus_before_ = p == U'+';
    if (is_alpha(p) || (p == U'.' && i >= 2 && is_digit(c_[i - 2]))) {
      // The first group belongs to a code or a decimal; what follows it is a run of its own.
      total -= groups_[0].second - groups_[0].first;
      groups_.erase(groups_.begin());
      if (groups_.empty()) return;
      separators_.erase(separators_.begin());
      plus_before_ = false;
    }
    const size_t count = groups_.size();
    const bool plausible = total <= 19 && plausible_number(total);
    // May a candidate start at group g (boundary between g - 1 and g)? separators_[g - 1] is
    // the separator before group g.
    const auto boundary = [&](size_t g) {
      if (g == 0 || g == count) return true;
      if (!plausible) return true;
      const char32_t here = separators_[g - 1];
      return (g >= 2 && separators_[g - 2] != here) ||
             (g < separators_.size() && separators_[g] != here);
    };
    size_t g = 0;
    while (g < count) {
      if (!boundary(g)) {
        ++g;
        continue;
      }
      size_t e = g;
      size_t digits = 0;
      while (e < count && digits + (groups_[e].second - groups_[e].first) <= 19) {
        digits += groups_[e].second - groups_[e].first;
        ++e;
      }
      bool matched = false;
      for (size_t last = e; last > g; --last) {
        if (boundary(last) && number(g, last - 1)) {
          g = last;
          matched = true;
          break;
        }
      }
      if (!matched) ++g;
    }
  }

  bool plausible_number(size_t total) {
    digits_.clear();
    for (const auto& [begin, end] : groups_) {
      for (size_t j = begin; j < end; ++j) digits_.push_back(static_cast<char>(c_[j]));
    }
    const char32_t next = at(groups_.back().second);
    if (total == 17 && (next == U'X' || next == U'x')) digits_.push_back('X');
    if (digits_.size() == 18 && is_valid_cn_resident_id(digits_, today_, true)) return true;
    return total >= 13 && has_card_iin(digits_);
  }

  bool number(size_t g, size_t e) {
    digits_.clear();
    for (size_t k = g; k <= e; ++k) {
      for (size_t j = groups_[k].first; j < groups_[k].second; ++j) {
        digits_.push_back(static_cast<char>(c_[j]));
      }
    }
    const size_t first = groups_[g].first;
    const size_t last = groups_[e].second;
    if (e + 1 == groups_.size()) {
      const char32_t next = at(last);
      if (next == U'X' || next == U'x') {
        if (digits_.size() != 17 || is_alnum(at(last + 1)) || at(last + 1) == U'@') return false;
        if (at(last + 1) == U'.' && is_digit(at(last + 2))) return false;
        digits_.push_back('X');
        if (!is_valid_cn_resident_id(digits_, today_)) return false;
        add(FindingType::kCnResidentId, first, last + 1, true);
        return true;
      }
      if (is_alpha(next) || next == U'@' || (next == U'.' && is_digit(at(last + 1)))) return false;
    }
    const size_t n = digits_.size();
    if (n == 18) {
      if (is_valid_cn_resident_id(digits_, today_)) {
        add(FindingType::kCnResidentId, first, last, true);
        return true;
      }
      // A mistyped resident ID (right region and birth date) is not taken for a card.
      if (is_valid_cn_resident_id(digits_, today_, /*structure_only=*/true)) return false;
    }
    if (n >= 13 && n <= 19 && has_card_iin(digits_) && luhn_valid(digits_)) {
      add(FindingType::kBankCard, first, last, true);
      return true;
    }
    const std::string_view d = digits_;
    size_t skip = 0;
    if (n == 13 && d.substr(0, 2) == "86") skip = 2;
    if (n == 15 && d.substr(0, 4) == "0086") skip = 4;
    if (is_mobile(d.substr(skip))) {
      const bool plus = skip == 2 && g == 0 && plus_before_;
      add(FindingType::kCnMobile, plus ? first - 1 : first, last, false);
      return true;
    }
    return false;
  }

  void ipv4(size_t i) {
    const char32_t p = before(i);
    if (is_alpha(p) || (p == U'.' && i >= 2 && is_alnum(c_[i - 2]))) return;
    size_t k = i;
    for (int octet = 0; octet < 4; ++octet) {
      const size_t begin = k;
      int value = 0;
      while (is_digit(at(k)) && k - begin < 4)
        value = value * 10 + static_cast<int>(c_[k++] - U'0');
      const size_t length = k - begin;
      if (length == 0 || length > 3 || value > 255 || (length > 1 && c_[begin] == U'0')) return;
      if (octet < 3) {
        if (at(k) != U'.') return;
        ++k;
      }
    }
    if (is_alnum(at(k)) || (at(k) == U'.' && is_digit(at(k + 1)))) return;
    add(FindingType::kIpv4, i, k, false);
  }

  void macau(size_t i) {
    if (is_alpha(before(i))) return;
    const char32_t lead = c_[i];
    if (lead != U'1' && lead != U'5' && lead != U'7' && lead != U'8') return;
    size_t k = i;
    while (is_digit(at(k)) && k - i < 8) ++k;
    if (k - i != 7) return;
    if (at(k) == U'(' && is_digit(at(k + 1)) && at(k + 2) == U')') {
      add(FindingType::kMacauId, i, k + 3, false);
    } else if (at(k) == U'/' && is_digit(at(k + 1)) && !is_alnum(at(k + 2)) && at(k + 2) != U'/') {
      add(FindingType::kMacauId, i, k + 2, false);
    }
  }

  // A maximal run of ASCII letters and digits: credit code, passport, Taiwan and Hong Kong
  // IDs, and the start of an IBAN.
  void alnum_token(size_t i) {
    size_t e = i;
    while (is_alnum(at(e)) && e - i <= 34) ++e;
    if (is_alnum(at(e))) return;
    std::string token;
    for (size_t k = i; k < e; ++k) token.push_back(static_cast<char>(to_upper(c_[k])));
    const size_t n = token.size();
    const auto digits_from = [&](size_t from) {
      return all_digits(std::string_view(token).substr(from));
    };
    // An all-digit code that is also a valid card number (62 IIN, Luhn) is left to the card.
    if (n == 18 && is_valid_cn_credit_code(token) &&
        !(all_digits(token) && has_card_iin(token) && luhn_valid(token))) {
      add(FindingType::kCnCreditCode, i, e, true);
    }
    bool passport = false;
    if (n == 9) {
      passport = ((token[0] == 'E' || token[0] == 'G') && digits_from(1)) ||
                 (token[0] == 'E' && is_alpha(c_[i + 1]) && digits_from(2));
      if (passport) add(FindingType::kCnPassport, i, e, false);
    }
    if (n == 10 && is_valid_tw_id(token)) add(FindingType::kTwId, i, e, true);
    // Hong Kong, check character glued; a 2-letter form that is also a passport number (E + letter
    // + 7 digits) stays a passport.
    if ((n == 8 || n == 9) && !passport && is_valid_hk_id(token)) {
      add(FindingType::kHkId, i, e, true);
    }
    if ((n == 7 || n == 8) && at(e) == U'(' && at(e + 2) == U')') {
      const char32_t check = to_upper(at(e + 1));
      if (is_digit(check) || check == U'A') {
        if (is_valid_hk_id(token + static_cast<char>(check))) {
          add(FindingType::kHkId, i, e + 3, true);
        }
      }
    }
    if (n >= 4 && is_alpha(c_[i]) && is_alpha(c_[i + 1]) && is_digit(c_[i + 2]) &&
        is_digit(c_[i + 3])) {
      iban(i, token.substr(0, 2));
    }
  }

  // Compact or in groups of four separated by single spaces.
  void iban(size_t i, const std::string& country) {
    const size_t length = static_cast<size_t>(iban_length(country));
    if (length == 0) return;
    std::string compact;
    size_t k = i;
    while (compact.size() < length) {
      const char32_t ch = at(k);
      if (is_alnum(ch)) {
        compact.push_back(static_cast<char>(to_upper(ch)));
        ++k;
      } else if (ch == U' ' && compact.size() % 4 == 0 && is_alnum(at(k + 1))) {
        ++k;
      } else {
        break;
      }
    }
    if (compact.size() != length || is_alnum(at(k))) return;
    if (is_valid_iban(compact)) add(FindingType::kIban, i, k, true);
  }

  void email(size_t a) {
    size_t k = a;
    while (k > 0 && is_email_local(c_[k - 1]) && a - k < 64) --k;
    if (k > 0 && is_email_local(c_[k - 1])) return;  // local part over 64 characters
    while (k < a && c_[k] == U'.') ++k;
    if (k == a) return;
    size_t d = a + 1;
    size_t last_dot = 0;
    size_t label = 0;
    while (d < c_.size() && d - a <= 254) {
      const char32_t ch = c_[d];
      if (is_alnum(ch) || ch == U'-') {
        ++label;
        ++d;
      } else if (ch == U'.' && label > 0 && is_alnum(at(d + 1))) {
        last_dot = d;
        label = 0;
        ++d;
      } else {
        break;
      }
    }
    if (last_dot == 0 || d - last_dot < 3) return;
    for (size_t t = last_dot + 1; t < d; ++t) {
      if (!is_alpha(c_[t])) return;
    }
    add(FindingType::kEmail, k, d, false);
  }

  void ipv6(size_t i) {
    size_t k = i;
    while ((is_hex(at(k)) || at(k) == U':' || at(k) == U'.') && k - i < 46) ++k;
    if (k - i >= 46 || is_alnum(at(k))) return;
    size_t begin = i;
    size_t end = k;
    while (end > begin && c_[end - 1] == U'.') --end;
    if (end - begin >= 2 && c_[begin] == U':' && c_[begin + 1] != U':') ++begin;
    if (end - begin >= 2 && c_[end - 1] == U':' && c_[end - 2] != U':') --end;
    std::string address;
    for (size_t t = begin; t < end; ++t) address.push_back(static_cast<char>(c_[t]));
    if (std::count(address.begin(), address.end(), ':') < 2) return;
    in6_addr parsed{};
    if (inet_pton(AF_INET6, address.c_str(), &parsed) != 1) return;
    // "::1", "a::b": too short to tell from text ("std::x" aside, which the boundary rejects).
    size_t groups = 0;
    size_t longest = 0;
    size_t current = 0;
    for (char ch : address + ':') {
      if (ch == ':') {
        if (current > 0) ++groups;
        longest = std::max(longest, current);
        current = 0;
      } else {
        ++current;
      }
    }
    if (groups < 3 && longest < 3) return;
    add(FindingType::kIpv6, begin, end, false);
  }

  void plate(size_t i) {
    size_t k = i + 1;
    if (!is_alpha(at(k))) return;
    ++k;
    const char32_t sep = at(k);
    if ((sep == U'·' || sep == U'•' || sep == U'・' || sep == U' ') && is_alnum(at(k + 1))) ++k;
    const size_t t = k;
    while (is_alnum(at(k)) && k - t <= 6) ++k;
    if (is_alnum(at(k))) return;
    std::string tail;
    for (size_t j = t; j < k; ++j) tail.push_back(static_cast<char>(to_upper(c_[j])));
    if (tail.find_first_of("IO") != std::string::npos) return;
    const auto digits =
        std::count_if(tail.begin(), tail.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    const std::string_view v = tail;
    bool ok = false;
    if (tail.size() == 5) ok = digits >= 3;
    if (tail.size() == 6) {
      ok = ((v[0] == 'D' || v[0] == 'F') && all_digits(v.substr(2))) ||
           ((v[5] == 'D' || v[5] == 'F') && all_digits(v.substr(0, 5)));
    }
    if (ok) add(FindingType::kCnLicensePlate, i, k, false);
  }

  void keywords(size_t i) {
    const auto it = keyword_index_.find(to_lower(c_[i]));
    if (it == keyword_index_.end()) return;
    for (size_t index : it->second) {
      const std::u32string& word = keywords_[index];
      if (i + word.size() > c_.size()) continue;
      bool equal = true;
      for (size_t j = 0; j < word.size() && equal; ++j) equal = to_lower(c_[i + j]) == word[j];
      if (!equal) continue;
      if (is_alnum(word.front()) && is_alnum(before(i))) continue;
      if (is_alnum(word.back()) && is_alnum(at(i + word.size()))) continue;
      keyword_hits_.push_back({FindingType::kKeyword, i, i + word.size(), false});
    }
  }

  const std::u32string& c_;
  CivilDate today_;
  const ScanDeadline deadline_;
  // Characters between two looks at the clock: a clock read per 4096 keeps its cost invisible.
  static constexpr size_t kDeadlineStride = 4096;
  std::vector<std::u32string> keywords_;  // normalized, ASCII letters lowercased
  std::unordered_map<char32_t, std::vector<size_t>> keyword_index_;
  std::vector<Candidate> candidates_;
  std::vector<Candidate> keyword_hits_;
  std::vector<std::pair<size_t, size_t>> groups_;
  std::string digits_;
  std::vector<char32_t> separators_;
  bool plus_before_ = false;
};

}  // namespace

std::vector<Finding> scan(std::string_view text, const ScanOptions& options,
                          ScanDeadline deadline) {
  const NormalizedText normalized = normalize_text(text);
  Scanner scanner(normalized, options, deadline);
  scanner.run();
  std::vector<Candidate>& candidates = scanner.candidates();
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) {
                     if (rank(a.type) != rank(b.type)) return rank(a.type) < rank(b.type);
                     return a.last - a.first > b.last - b.first;
                   });
  std::map<size_t, Candidate> accepted;  // by first
  for (const Candidate& candidate : candidates) {
    const auto next = accepted.lower_bound(candidate.first);
    if (next != accepted.end() && next->first < candidate.last) continue;
    if (next != accepted.begin() && std::prev(next)->second.last > candidate.first) continue;
    accepted.emplace(candidate.first, candidate);
  }
  // The optional tier: separate passes over the same code points, so that with it off the
  // main loop is exactly what it was.
  std::vector<TierSpan> tier;
  if (options.person_names) find_person_names(normalized.chars, deadline, tier);
  if (options.addresses) find_addresses(normalized.chars, deadline, tier);
  std::vector<Finding> findings;
  findings.reserve(accepted.size() + scanner.keyword_hits().size() + tier.size());
  const auto emit = [&](const Candidate& c) {
    findings.push_back(
        {c.type, normalized.byte_begin(c.first), normalized.byte_end(c.last), c.verified});
  };
  for (const auto& [first, candidate] : accepted) emit(candidate);
  for (const Candidate& hit : scanner.keyword_hits()) emit(hit);
  for (const TierSpan& hit : tier) emit({hit.type, hit.first, hit.last, false});
  if (options.patterns) {
    options.patterns->find(text, findings);  // on the text as sent: already byte offsets
  }
  std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  return findings;
}

}  // namespace mmserve::privacy
