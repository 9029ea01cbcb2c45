#include "privacy/checksums.h"

#include <array>
#include <chrono>

namespace mmserve::privacy {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

bool all_digits(std::string_view s) {
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return !s.empty();
}

int two_digit_value(std::string_view s) {
  return (s[0] - '0') * 10 + (s[1] - '0');
}

constexpr std::string_view kGb32100Alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";

int gb32100_value(char c) {
  const size_t index = kGb32100Alphabet.find(c);
  return index == std::string_view::npos ? -1 : static_cast<int>(index);
}

// Organization categories (second character) allowed for each registration department (first
// character), GB 32100-2015 appendix A.
std::string_view credit_code_categories(char department) {
  switch (department) {
    case '1': return "1239";
    case '2': return "19";
    case '3': return "123459";
    case '4': return "19";
    case '5': return "1239";
    case '6': return "129";
    case '7': return "129";
    case '8': return "19";
    case '9': return "123";
    case 'A': return "19";
    case 'N': return "1239";
    case 'Y': return "1";
    default: return {};
  }
}

struct IbanCountry {
  char code[3];
  int length;
};

// SWIFT IBAN registry lengths.
constexpr IbanCountry kIbanCountries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

// Taiwan letter codes: A=10 ... H=17, then J=18 ... N=22, P=23 ... V=29, X=30, Y=31, W=32,
// Z=33, I=34, O=35.
constexpr std::array<int, 26> kTwLetterCodes = {10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21,
                                                22, 35, 23, 24, 25, 26, 27, 28, 29, 32, 30, 31, 33};

}  // namespace

CivilDate today_utc() {
  const auto now = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  const std::chrono::year_month_day ymd{now};
  return {static_cast<int>(ymd.year()), static_cast<int>(static_cast<unsigned>(ymd.month())),
          static_cast<int>(static_cast<unsigned>(ymd.day()))};
}

bool is_valid_civil_date(int year, int month, int day) {
  if (month < 1 || month > 12 || day < 1) return false;
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days = month == 2 && leap ? 29 : kDays[month - 1];
  return day <= days;
}

bool is_cn_province_code(std::string_view two_digits) {
  if (two_digits.size() != 2 || !all_digits(two_digits)) return false;
  const int code = two_digit_value(two_digits);
  return (code >= 11 && code <= 15) || (code >= 21 && code <= 23) || (code >= 31 && code <= 37) ||
         (code >= 41 && code <= 46) || (code >= 50 && code <= 54) || (code >= 61 && code <= 65) ||
         code == 71 || code == 81 || code == 82 || code == 83;
}

char gb11643_check_char(std::string_view first17) {
  if (first17.size() != 17 || !all_digits(first17)) return '\0';
  static constexpr std::array<int, 17> kWeights = {7, 9, 10, 5,  8, 4, 2, 1, 6,
                                                   3, 7, 9,  10, 5, 8, 4, 2};
  int sum = 0;
  for (size_t i = 0; i < 17; ++i) sum += (first17[i] - '0') * kWeights[i];
  return "10X98765432"[sum % 11];
}

bool is_valid_cn_resident_id(std::string_view id, CivilDate today, bool structure_only) {
  if (id.size() != 18 || !all_digits(id.substr(0, 17))) return false;
  const char last = id[17];
  if (!is_digit(last) && last != 'X' && last != 'x') return false;
  if (!is_cn_province_code(id.substr(0, 2))) return false;
  const int year = two_digit_value(id.substr(6, 2)) * 100 + two_digit_value(id.substr(8, 2));
  const int month = two_digit_value(id.substr(10, 2));
  const int day = two_digit_value(id.substr(12, 2));
  if (year < 1900 || !is_valid_civil_date(year, month, day)) return false;
  const auto after = [](int y1, int m1, int d1, const CivilDate& d) {
    return y1 != d.year ? y1 > d.year : m1 != d.month ? m1 > d.month : d1 > d.day;
  };
  if (after(year, month, day, today)) return false;
  if (structure_only) return true;
  const char expected = gb11643_check_char(id.substr(0, 17));
  return expected == (last == 'x' ? 'X' : last);
}

char gb32100_check_char(std::string_view first17) {
  if (first17.size() != 17) return '\0';
  int sum = 0;
  int weight = 1;
  for (char c : first17) {
    const int value = gb32100_value(c);
    if (value < 0) return '\0';
    sum += value * weight;
    weight = weight * 3 % 31;
  }
  return kGb32100Alphabet[(31 - sum % 31) % 31];
}

char gb11714_check_char(std::string_view first8) {
  if (first8.size() != 8) return '\0';
  static constexpr std::array<int, 8> kWeights = {3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (size_t i = 0; i < 8; ++i) {
    const char c = first8[i];
    if (!is_digit(c) && !is_upper(c)) return '\0';
    sum += (is_digit(c) ? c - '0' : c - 'A' + 10) * kWeights[i];
  }
  const int check = 11 - sum % 11;
  return check == 10 ? 'X' : check == 11 ? '0' : static_cast<char>('0' + check);
}

bool is_valid_cn_credit_code(std::string_view code) {
  if (code.size() != 18) return false;
  const std::string_view categories = credit_code_categories(code[0]);
  if (categories.empty() || categories.find(code[1]) == std::string_view::npos) return false;
  const std::string_view region = code.substr(2, 6);
  if (!all_digits(region)) return false;
  if (!is_cn_province_code(region.substr(0, 2)) && region.substr(0, 2) != "10") return false;
  if (gb32100_value(code[17]) < 0) return false;
  if (gb11714_check_char(code.substr(8, 8)) != code[16]) return false;
  return gb32100_check_char(code.substr(0, 17)) == code[17];
}

bool luhn_valid(std::string_view digits) {
  if (!all_digits(digits)) return false;
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

int iban_length(std::string_view country) {
  for (const IbanCountry& entry : kIbanCountries) {
    if (country == entry.code) return entry.length;
  }
  return 0;
}

bool is_valid_iban(std::string_view iban) {
  if (iban.size() < 5) return false;
  const int length = iban_length(iban.substr(0, 2));
  if (length == 0 || static_cast<int>(iban.size()) != length) return false;
  if (!is_digit(iban[2]) || !is_digit(iban[3])) return false;
  int remainder = 0;
  for (size_t k = 0; k < iban.size(); ++k) {
    const char c = iban[(k + 4) % iban.size()];
    if (is_digit(c)) {
      remainder = (remainder * 10 + (c - '0')) % 97;
    } else if (is_upper(c)) {
      remainder = (remainder * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return remainder == 1;
}

bool is_valid_tw_id(std::string_view id) {
  if (id.size() != 10 || !is_upper(id[0]) || !all_digits(id.substr(1))) return false;
  if (id[1] != '1' && id[1] != '2' && id[1] != '8' && id[1] != '9') return false;
  const int code = kTwLetterCodes[id[0] - 'A'];
  int sum = code / 10 + code % 10 * 9;
  for (size_t i = 1; i <= 8; ++i) sum += (id[i] - '0') * static_cast<int>(9 - i);
  sum += id[9] - '0';
  return sum % 10 == 0;
}

char hk_id_check_char(std::string_view body) {
  const size_t letters = body.size() == 7 ? 1 : body.size() == 8 ? 2 : 0;
  if (letters == 0) return '\0';
  for (size_t i = 0; i < letters; ++i) {
    if (!is_upper(body[i])) return '\0';
  }
  if (!all_digits(body.substr(letters))) return '\0';
  int sum = letters == 1 ? 36 * 9 : 0;
  int weight = letters == 1 ? 8 : 9;
  for (char c : body) {
    const int value = is_upper(c) ? c - 'A' + 10 : c - '0';
    sum += value * weight--;
  }
  const int check = (11 - sum % 11) % 11;
  return check == 10 ? 'A' : static_cast<char>('0' + check);
}

bool is_valid_hk_id(std::string_view id) {
  if (id.size() < 8) return false;
  const char expected = hk_id_check_char(id.substr(0, id.size() - 1));
  return expected != '\0' && expected == id.back();
}

}  // namespace mmserve::privacy
