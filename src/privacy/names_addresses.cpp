#include "privacy/names_addresses.h"

#include <string>

#include "privacy/names_addresses_tables.h"

namespace mmserve::privacy {
namespace {

using namespace tier;

// ---- Chinese person names ----

bool honorific_at(Text t, size_t k, const Tables& tb) {
  if (tb.honorifics.starts_at(t, k) > 0) {
    return true;
  }
  return at(t, k) == U'总' && !is_han(at(t, k + 1));  // 陈总， but not 总经理 总部 总计
}

bool given_char(Text t, size_t k, const Tables& tb) {
  const char32_t c = at(t, k);
  return is_han(c) && !tb.stops.contains(c) && !honorific_at(t, k, tb) &&
         tb.field_words.starts_at(t, k) == 0;
}

enum class Label { kNone, kPlain, kSeparated };

Label label_before(Text t, size_t i, const Tables& tb) {
  size_t end = i;
  while (end > 0 && i - end < 3 && (t[end - 1] == U':' || t[end - 1] == U' ')) {
    --end;
  }
  if (!tb.labels.ends_at(t, end)) {
    return Label::kNone;
  }
  return end < i ? Label::kSeparated : Label::kPlain;
}

// 2: a naming frame (我叫, 名叫 ...); 1: 我是, a weaker one (我是苏州人, 我是学生); 0: none.
int frame_before(Text t, size_t i, const Tables& tb) {
  const size_t end = i > 0 && t[i - 1] == U' ' ? i - 1 : i;
  if (tb.naming_frames.ends_at(t, end)) {
    return 2;
  }
  return end >= 2 && t[end - 2] == U'我' && t[end - 1] == U'是' ? 1 : 0;
}

// One past the name that starts at i (a surname there), or 0.
size_t chinese_name(Text t, size_t i, const Tables& tb) {
  size_t s = 0;
  if (tb.compound.starts_at(t, i) > 0) {
    s = 2;
  } else if (tb.surnames.contains(t[i])) {
    s = 1;
  }
  if (s == 0 || tb.not_names.starts_at(t, i) > 0) {
    return 0;
  }
  // 谢谢陈静 is 陈静, but 感谢谢梅 is 谢梅.
  if (s == 1 && tb.ending_in_surname.ends_at(t, i + 1) && !tb.ending_in_surname.ends_at(t, i)) {
    return 0;
  }
  size_t g = 0;
  while (g < 2 && given_char(t, i + s + g, tb)) {
    ++g;
  }
  if (g == 0) {
    return 0;
  }
  const size_t e = i + s + g;
  // The name ends cleanly: what follows cannot continue a given name.
  const bool clean = !given_char(t, e, tb);
  const bool weak = s == 1 && tb.weak.contains(t[i]);
  const Label label = label_before(t, i, tb);
  if (label == Label::kSeparated) {
    return e;  // 姓名：高明 (even a third given character is cut)
  }
  if (clean && !weak && label == Label::kPlain) {
    return e;
  }
  const int frame = frame_before(t, i, tb);
  if (clean && frame == 2) {
    return e;
  }
  if (clean && frame == 1 && !weak && at(t, e) != U'人') {
    return e;  // 我是苏州人: a place
  }
  if (!weak && honorific_at(t, e, tb)) {
    return e;
  }
  return 0;
}

// ---- English person names ----

struct Word {
  size_t end = 0;  // 0: no capitalised word here
  bool initial = false;
};

// "Smith", "McDonald", "O'Brien", "Smith-Jones"; an initial "J.".
Word capitalised_word(Text t, size_t k) {
  if (!is_upper(at(t, k))) {
    return {};
  }
  size_t j = k + 1;
  if (at(t, j) == U'.') {
    return {j + 1, true};
  }
  if (at(t, j) == U'\'' && is_upper(at(t, j + 1))) {
    j += 2;
  }
  if (!is_lower(at(t, j))) {
    return {};
  }
  while (is_alpha(at(t, j)) ||
         ((at(t, j) == U'-' || at(t, j) == U'\'') && is_alpha(at(t, j + 1)))) {
    ++j;
  }
  if (is_digit(at(t, j))) {
    return {};
  }
  return {j, false};
}

struct Run {
  size_t end = 0;
  int words = 0;
  bool company = false;
};

// Up to `max` capitalised words separated by single spaces (initials between them).
Run capitalised_run(Text t, size_t k, int max) {
  Run r;
  for (int tokens = 0; r.words < max && tokens < max + 2; ++tokens) {
    const Word w = capitalised_word(t, k);
    if (w.end == 0) {
      break;
    }
    if (!w.initial) {
      const std::string word = ascii(t, k, w.end);
      if (listed(kSentenceWords, word)) {
        break;
      }
      if (listed(kCompanyWords, word)) {
        r.company = true;
        break;
      }
      ++r.words;
      r.end = w.end;
    }
    if (at(t, w.end) != U' ' || !is_upper(at(t, w.end + 1))) {
      break;
    }
    k = w.end + 1;
  }
  return r;
}

struct Span {
  size_t first = 0, last = 0;
};

Span english_name(Text t, size_t i) {
  for (size_t b = 0; b < kEnglishHonorifics.size();) {
    const size_t e = std::min(kEnglishHonorifics.find(' ', b), kEnglishHonorifics.size());
    const std::string_view h = kEnglishHonorifics.substr(b, e - b);
    b = e + 1;
    if (!ascii_word_at(t, i, h, false)) {
      continue;
    }
    size_t k = i + h.size();
    const bool dot = at(t, k) == U'.';
    k += dot ? 1 : 0;
    size_t spaces = 0;
    while (at(t, k) == U' ' && spaces < 2) {
      ++k, ++spaces;
    }
    if (!dot && spaces == 0) {
      return {};
    }
    const Run r = capitalised_run(t, k, 3);
    return r.words >= 1 && !r.company ? Span{k, r.end} : Span{};
  }
  for (size_t b = 0; b < kEnglishLabels.size();) {
    const size_t e = std::min(kEnglishLabels.find(' ', b), kEnglishLabels.size());
    const std::string_view label = kEnglishLabels.substr(b, e - b);
    b = e + 1;
    if (!ascii_word_at(t, i, label, true)) {
      continue;
    }
    size_t k = i + label.size();
    if (at(t, k) == U' ') {
      ++k;
    }
    if (at(t, k) != U':') {
      return {};
    }
    ++k;
    for (size_t spaces = 0; at(t, k) == U' ' && spaces < 2; ++spaces) {
      ++k;
    }
    const Run r = capitalised_run(t, k, 3);
    return r.words >= 2 && !r.company ? Span{k, r.end} : Span{};
  }
  return {};
}

// ---- Chinese addresses ----

struct ProvinceMatch {
  size_t length = 0;
  bool city = false;  // a municipality or SAR: counts as the city
};

ProvinceMatch province_at(Text t, size_t k, const Tables& tb) {
  if (const size_t n = tb.municipalities.starts_at(t, k)) {
    return {n + (at(t, k + n) == U'市' ? 1 : 0), true};
  }
  if (const size_t n = tb.provinces.starts_at(t, k)) {
    if (at(t, k + n) == U'市') {
      return {n + 1, true};  // 吉林市: the city
    }
    return {n + (at(t, k + n) == U'省' ? 1 : 0), false};
  }
  if (const size_t n = tb.regions.starts_at(t, k)) {
    return {n + tb.region_suffixes.starts_at(t, k + n), false};
  }
  if (const size_t n = tb.sars.starts_at(t, k)) {
    return {n + (starts(t, k + n, U"特别行政区") ? 5 : 0), true};
  }
  return {};
}

bool place_char(char32_t c, const Tables& tb) {
  return is_han(c) && !tb.not_place.contains(c);
}
bool division_suffix(char32_t c) {
  return kDivisionSuffixes.find(c) != Text::npos;
}

// The length of a division (name and 市/区/县/旗) at k. The first of an address has no anchor
// before it, so its name is a listed city or two characters, three only where the address
// clearly begins: "住在朝阳区" starts at 朝, "住址石景山区" at 石.
size_t division_at(Text t, size_t k, bool first, const Tables& tb) {
  if (first) {
    const size_t city = tb.cities.starts_at(t, k);
    if (city > 0 && at(t, k + city) == U'市') {
      return city + 1;
    }
    const auto name_char = [&](size_t j) {
      return place_char(at(t, j), tb) && !division_suffix(at(t, j));
    };
    if (!name_char(k) || !name_char(k + 1)) {
      return 0;
    }
    if (division_suffix(at(t, k + 2))) {
      return 3;
    }
    if (starts(t, k + 2, U"新区")) {
      return 4;  // 浦东新区
    }
    // 石景山区 after 住址: three characters where the address clearly begins at k.
    const bool lead = k == 0 || !is_han(t[k - 1]) || tb.address_leads.contains(t[k - 1]);
    const bool three = lead && !tb.address_leads.contains(t[k]) && name_char(k + 2);
    return three && division_suffix(at(t, k + 3)) ? 4 : 0;
  }
  for (size_t n = 1; n <= 5; ++n) {
    if (!place_char(at(t, k + n - 1), tb)) {
      return 0;
    }
    if (n >= 2 && division_suffix(at(t, k + n))) {
      return n + 1;
    }
  }
  return 0;
}

size_t town_at(Text t, size_t k, const Tables& tb) {
  for (size_t n = 1; n <= 4; ++n) {
    if (!place_char(at(t, k + n - 1), tb)) {
      return 0;
    }
    if (n < 2) {
      continue;
    }
    if (starts(t, k + n, U"街道")) {
      return n + 2;
    }
    if (at(t, k + n) == U'镇' || at(t, k + n) == U'乡') {
      return n + 1;
    }
  }
  return 0;
}

// One past a street (1-6 characters and 路/街/大道/...) at k, or 0.
size_t street_at(Text t, size_t k, const Tables& tb) {
  for (size_t n = 1; n <= 6; ++n) {
    if (!place_char(at(t, k + n - 1), tb) || at(t, k + n - 1) == U'巷') {
      return 0;
    }
    const size_t p = k + n;
    if (starts(t, p, U"街道")) {
      return 0;
    }
    if (const size_t s = tb.street_suffixes.starts_at(t, p)) {
      return p + s;
    }
  }
  return 0;
}

// "88号", "88-2号", "123弄", "123弄4号", "八十八号".
size_t house_number_at(Text t, size_t k) {
  size_t j = digit_run(t, k, 5);
  if (j == k) {
    while (j - k < 6 && Text(U"一二三四五六七八九十百零〇").find(at(t, j)) != Text::npos) {
      ++j;
    }
    return j > k && at(t, j) == U'号' ? j + 1 : 0;
  }
  if (at(t, j) == U'-' && is_digit(at(t, j + 1))) {
    j = digit_run(t, j + 1, 4);
  }
  if (at(t, j) == U'号') {
    return j + 1;
  }
  if (at(t, j) != U'弄') {
    return 0;
  }
  const size_t m = digit_run(t, j + 1, 4);
  return m > j + 1 && at(t, m) == U'号' ? m + 1 : j + 1;
}

// Building parts after the house number: "3栋2单元501室", "B座12层", "5号楼1203".
size_t building(Text t, size_t k, const Tables& tb) {
  bool unit = false;
  for (int part = 0; part < 5; ++part) {
    size_t m = digit_run(t, k, 5);
    if (m == k && is_upper(at(t, k))) {
      m = k + 1;
    }
    if (m == k) {
      break;
    }
    if (const size_t u = tb.building_units.starts_at(t, m)) {
      k = m + u;
      unit = true;
      continue;
    }
    if (unit && is_digit(at(t, k)) && !is_alnum(at(t, m))) {
      k = m;  // 3栋501
    }
    break;
  }
  return k;
}

size_t skip_space(Text t, size_t k) {
  return at(t, k) == U' ' && is_han(at(t, k + 1)) ? k + 1 : k;
}

size_t chinese_address(Text t, size_t i, const Tables& tb) {
  size_t k = i;
  bool city = false;
  bool any = false;
  if (const ProvinceMatch p = province_at(t, k, tb); p.length > 0) {
    k = skip_space(t, k + p.length);
    city = p.city;
    any = true;
  }
  if (const size_t n = tb.cities.starts_at(t, k);
      !any && n > 0 && division_at(t, k + n, false, tb)) {
    k += n;  // 杭州西湖区: a listed city without 市
    any = true;
  }
  for (int d = 0; d < 3; ++d) {
    const size_t n = division_at(t, k, !any, tb);
    if (n == 0) {
      break;
    }
    k = skip_space(t, k + n);
    any = city = true;
  }
  if (!city) {
    return 0;
  }
  k += town_at(t, k, tb);
  size_t s = street_at(t, k, tb);
  if (s == 0) {
    return 0;
  }
  if (!is_digit(at(t, s))) {
    if (const size_t s2 = street_at(t, s, tb)) {
      s = s2;  // 中山路东风巷5号
    }
  }
  const size_t n = house_number_at(t, s);
  if (n == 0) {
    return 0;
  }
  const size_t b = building(t, n, tb);
  if (b > n) {
    return b;
  }
  // An estate counts only with a building part after it (金都花园3栋501室).
  for (size_t e = 1; e <= 6 && place_char(at(t, n + e - 1), tb); ++e) {
    if (const size_t suffix = tb.estate_suffixes.starts_at(t, n + e); suffix > 0 && e >= 2) {
      const size_t after = building(t, n + e + suffix, tb);
      return after > n + e + suffix ? after : n;
    }
  }
  return n;
}

// ---- English street addresses ----

// A capitalised word or an ordinal ("5th"): one past it, or 0.
size_t street_word(Text t, size_t k) {
  const Word w = capitalised_word(t, k);
  if (w.end != 0) {
    return w.initial ? 0 : w.end;
  }
  const size_t d = digit_run(t, k, 3);
  if (d == k) {
    return 0;
  }
  const std::string suffix = ascii(t, d, std::min(d + 2, t.size()));
  const bool ordinal = suffix == "st" || suffix == "nd" || suffix == "rd" || suffix == "th";
  return ordinal && !is_alnum(at(t, d + 2)) ? d + 2 : 0;
}

size_t english_address(Text t, size_t i) {
  size_t k = digit_run(t, i, 5);
  if (k == i || at(t, k) != U' ') {
    return 0;
  }
  ++k;
  size_t end = 0;
  for (int token = 0; token < 5; ++token) {
    const size_t w = street_word(t, k);
    if (w == 0) {
      break;
    }
    const std::string word = ascii(t, k, w);
    if (token >= 1 && listed(kEnglishStreetSuffixes, word)) {
      end = w;  // the last suffix after at least one name word
    } else if (listed(kSentenceWords, word) || listed(kCompanyWords, word)) {
      break;
    }
    if (at(t, w) != U' ') {
      break;
    }
    k = w + 1;
  }
  if (end == 0) {
    return 0;
  }
  const size_t j = end + (at(t, end) == U'.' ? 1 : 0);
  if (at(t, j) == U',' && at(t, j + 1) == U' ') {
    const Run city = capitalised_run(t, j + 2, 2);
    if (city.words >= 1 && !city.company) {
      end = city.end;
    }
  }
  // ", MA 02118": a state and a ZIP code.
  if (at(t, end) == U',' && at(t, end + 1) == U' ' && is_upper(at(t, end + 2)) &&
      is_upper(at(t, end + 3)) && at(t, end + 4) == U' ' && digit_run(t, end + 5, 5) == end + 10 &&
      !is_alnum(at(t, end + 10))) {
    end += 10;
  }
  return end;
}

}  // namespace

void find_person_names(Text text, const ScanDeadline& deadline, std::vector<TierSpan>& out) {
  const Tables& tb = tables();
  Clock clock(deadline);
  for (size_t i = 0; i < text.size(); ++i) {
    clock.check(i);
    const char32_t c = text[i];
    Span span;
    if (is_han(c)) {
      span = {i, chinese_name(text, i, tb)};
    } else if (is_alpha(c) && (i == 0 || !is_alnum(text[i - 1]))) {
      span = english_name(text, i);
    }
    if (span.last > span.first) {
      out.push_back({FindingType::kPersonName, span.first, span.last});
      i = span.last - 1;
    }
  }
}

void find_addresses(Text text, const ScanDeadline& deadline, std::vector<TierSpan>& out) {
  const Tables& tb = tables();
  Clock clock(deadline);
  for (size_t i = 0; i < text.size(); ++i) {
    clock.check(i);
    const char32_t c = text[i];
    size_t end = 0;
    if (is_han(c)) {
      end = chinese_address(text, i, tb);
    } else if (is_digit(c)) {
      const char32_t p = i == 0 ? 0 : text[i - 1];
      if (!is_alnum(p) && p != U'.' && p != U'-' && p != U'/' && p != U':') {
        end = english_address(text, i);
      }
    }
    if (end > i) {
      out.push_back({FindingType::kAddress, i, end});
      i = end - 1;
    }
  }
}

}  // namespace mmserve::privacy
