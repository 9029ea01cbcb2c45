// The corpus generator (privacy_corpus.h). Moved verbatim from the recall/precision test; the
// only addition is Record::planted. Its random draws must stay in the same order: the test's
// table and the integration tests' corpora depend on the sequence a seed gives.
#include "privacy_corpus.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "privacy_reference.h"

namespace mmserve::privacy_corpus {

using privacy::FindingType;
using privacy_test::reference_id_check;

namespace {

constexpr size_t kTypes = kCorpusTypes;

// ---- Independent checksums ----------------------------------------------------------------

// The Luhn digit that completes `body`.
char luhn_digit(const std::string& body) {
  static const int kDoubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
  int sum = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    const int d = body[body.size() - 1 - i] - '0';
    sum += i % 2 == 0 ? kDoubled[d] : d;  // the check digit will sit at position 0
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

const std::string kCreditAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";

char credit_check(const std::string& first17) {
  static const int kWeights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};
  int sum = 0;
  for (int i = 0; i < 17; ++i)
    sum += static_cast<int>(kCreditAlphabet.find(first17[i])) * kWeights[i];
  return kCreditAlphabet[(31 - sum % 31) % 31];
}

// GB 11714: weights 3 7 9 10 5 8 4 2 over values 0-9, A = 10 ...; check 11 - sum mod 11 with
// 10 written X and 11 written 0.
char organization_check(const std::string& first8) {
  static const int kWeights[8] = {3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 8; ++i) {
    const char c = first8[i];
    sum += (c <= '9' ? c - '0' : c - 'A' + 10) * kWeights[i];
  }
  const int check = 11 - sum % 11;
  return check == 10 ? 'X' : check == 11 ? '0' : static_cast<char>('0' + check);
}

// Taiwan: letters in the order of their codes 10, 11, ... 35.
char tw_check(const std::string& first9) {
  const int code = static_cast<int>(std::string("ABCDEFGHJKLMNPQRSTUVXYWZIO").find(first9[0])) + 10;
  int sum = code / 10 + (code % 10) * 9;
  for (int i = 1; i < 9; ++i) sum += (first9[i] - '0') * (9 - i);
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

// Hong Kong: the check value c makes sum + c a multiple of 11 (a single letter has a space,
// worth 36, before it).
char hk_check(const std::string& body) {
  std::string padded = body.size() == 7 ? " " + body : body;
  int sum = 0;
  for (int i = 0; i < 8; ++i) {
    const char c = padded[i];
    const int value = c == ' ' ? 36 : (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : c - '0';
    sum += value * (9 - i);
  }
  const int c = (11 - sum % 11) % 11;  // (sum + c) % 11 == 0
  return c == 10 ? 'A' : static_cast<char>('0' + c);
}

int mod97(const std::string& s) {
  int r = 0;
  for (char c : s) r = c <= '9' ? (r * 10 + (c - '0')) % 97 : (r * 100 + (c - 'A' + 10)) % 97;
  return r;
}

std::string iban_with_check(const std::string& country, const std::string& bban) {
  const int check = 98 - mod97(bban + country + "00");
  return country + (check < 10 ? "0" : "") + std::to_string(check) + bban;
}

}  // namespace

// ---- The generator ------------------------------------------------------------------------

namespace detail {

class Generator {
 public:
  explicit Generator(unsigned seed) : rng_(seed) {}

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(uniform(0, static_cast<int>(v.size()) - 1))];
  }
  std::string digits(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + uniform(0, 9)));
    return s;
  }
  char upper_no_io() {
    static const std::string kLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ";
    return kLetters[static_cast<size_t>(uniform(0, 23))];
  }
  char from(const std::string& alphabet) {
    return alphabet[static_cast<size_t>(uniform(0, static_cast<int>(alphabet.size()) - 1))];
  }
  std::string group(const std::string& s, const std::vector<int>& sizes, const std::string& sep) {
    std::string out;
    size_t at = 0;
    for (size_t i = 0; i < sizes.size() && at < s.size(); ++i) {
      if (i > 0) out += sep;
      out += s.substr(at, static_cast<size_t>(sizes[i]));
      at += static_cast<size_t>(sizes[i]);
    }
    return out + s.substr(std::min(at, s.size()));
  }

  std::string region() {
    static const std::vector<std::string> kRegions = {
        "110101", "110105", "120101", "130102", "140105", "150102", "210102", "220102", "230102",
        "310101", "310115", "320102", "330106", "340102", "350102", "360102", "370102", "410102",
        "420102", "430102", "440106", "440305", "450102", "460105", "500101", "510104", "520102",
        "530102", "540102", "610102", "620102", "630102", "640104", "650102"};
    return pick(kRegions);
  }
  std::string birth_date() {
    static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int year = uniform(1940, 2010);
    const int month = uniform(1, 12);
    const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    const int day = uniform(1, month == 2 && leap ? 29 : kDays[month - 1]);
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "%04d%02d%02d", year, month, day);
    return buffer;
  }

  std::string resident_id() {
    const std::string body = region() + birth_date() + digits(3);
    return body + reference_id_check(body);
  }
  std::string credit_code() {
    static const std::vector<std::string> kKinds = {"91", "92", "93", "11", "12",
                                                    "51", "52", "53", "Y1"};
    std::string organization;
    for (int i = 0; i < 8; ++i) {
      organization.push_back(chance(0.7) ? static_cast<char>('0' + uniform(0, 9))
                                         : from(kCreditAlphabet));
    }
    const std::string body =
        pick(kKinds) + region() + organization + organization_check(organization);
    return body + credit_check(body);
  }
  std::string mobile_number() {
    // The allocated prefixes, three digits each.
    static const std::string kPrefixes =
        "130131132133134135136137138139145147149150151152153155156157158159162165166167170171"
        "172173175176177178180181182183184185186187188189190191192193195196197198199";
    return kPrefixes.substr(static_cast<size_t>(uniform(0, 52)) * 3, 3) + digits(8);
  }
  std::string card_number() {
    std::string body;
    switch (uniform(0, 5)) {
      case 0:
      case 1: body = "62" + digits(pick(std::vector<int>{14, 14, 17, 17, 15, 16}) - 1); break;
      case 2: body = "4" + digits(pick(std::vector<int>{15, 15, 12, 18}) - 1); break;
      case 3: body = std::to_string(uniform(51, 55)) + digits(13); break;
      case 4: body = std::to_string(uniform(2221, 2720)) + digits(11); break;
      default: body = (chance(0.5) ? "34" : "37") + digits(12); break;
    }
    return body + luhn_digit(body);
  }
  std::string passport() {  // E or G and 8 digits, or E, a letter and 7 digits
    return chance(0.67) ? (chance(0.5) ? "E" : "G") + digits(8)
                        : "E" + std::string(1, upper_no_io()) + digits(7);
  }
  std::string hk_body() {
    std::string letters(1, upper_no_io());
    if (chance(0.2))
      letters = std::string(1, pick(std::vector<char>{'X', 'W', 'C', 'R'})) + upper_no_io();
    return letters + digits(6);
  }
  std::string tw_body() {
    return std::string(1, static_cast<char>('A' + uniform(0, 25))) +
           static_cast<char>(pick(std::vector<char>{'1', '2', '1', '2', '8', '9'})) + digits(7);
  }
  // A valid IBAN of one of ten countries, its BBAN drawn from the registry's format ("4a14n":
  // four letters, then 14 digits; c: letter or digit).
  std::string iban_compact() {
    static const std::vector<std::pair<std::string, std::string>> kFormats = {
        {"DE", "18n"},      {"GB", "4a14n"}, {"FR", "10n11c2n"}, {"NL", "4a10n"}, {"ES", "20n"},
        {"IT", "1a10n12c"}, {"CH", "5n12c"}, {"PL", "24n"},      {"BE", "12n"},   {"AT", "16n"}};
    const auto& [country, format] = pick(kFormats);
    std::string bban;
    int count = 0;
    for (char f : format) {
      if (f >= '0' && f <= '9') {
        count = count * 10 + (f - '0');
        continue;
      }
      for (; count > 0; --count) {
        bban.push_back(f == 'n'   ? static_cast<char>('0' + uniform(0, 9))
                       : f == 'a' ? upper_no_io()
                                  : from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"));
      }
    }
    return iban_with_check(country, bban);
  }

  std::mt19937 rng_;
};

}  // namespace detail

namespace {

using detail::Generator;

// The full-width form of the ASCII characters the normalizer folds.
std::string full_width(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string("@.()-:+/").find(c) == std::string::npos) {
      out.push_back(c);
      continue;
    }
    const unsigned cp = 0xFF00u + static_cast<unsigned>(c - 0x20);
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

// One valid identifier of `type` as it may be written: separators, +86, full-width forms.
std::string identifier(Generator& g, FindingType type) {
  const bool separated = g.chance(0.35);
  const std::string sep = g.chance(0.5) ? " " : "-";
  std::string s;
  switch (type) {
    case FindingType::kCnResidentId:
      s = g.resident_id();
      if (separated) s = g.group(s, {6, 8, 4}, sep);
      break;
    case FindingType::kCnCreditCode: s = g.credit_code(); break;
    case FindingType::kCnMobile:
      s = g.mobile_number();
      if (separated) s = g.group(s, {3, 4, 4}, sep);
      if (g.chance(0.25))
        s = g.pick(std::vector<std::string>{"+86 ", "+86", "0086", "86-", "+86-"}) + s;
      break;
    case FindingType::kBankCard: {
      s = g.card_number();
      const bool amex = s.size() == 15 && s[0] == '3';
      if (separated)
        s = g.group(s, amex ? std::vector<int>{4, 6, 5} : std::vector<int>{4, 4, 4, 4}, sep);
      break;
    }
    case FindingType::kEmail: {
      static const std::vector<std::string> kLocal = {"zhang.san",   "li_si",   "wangwu88",
                                                      "john.smith",  "support", "a.b-c",
                                                      "13912345678", "sales+cn"};
      static const std::vector<std::string> kDomains = {
          "example.com", "qq.com", "163.com", "gmail.com", "company.com.cn", "mail.example.org"};
      s = g.pick(kLocal) + std::to_string(g.uniform(0, 99)) + "@" + g.pick(kDomains);
      break;
    }
    case FindingType::kIpv4:
      s = std::to_string(g.uniform(1, 223)) + "." + std::to_string(g.uniform(0, 255)) + "." +
          std::to_string(g.uniform(0, 255)) + "." + std::to_string(g.uniform(1, 254));
      break;
    case FindingType::kIpv6: {
      const auto hex_group = [&] {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, g.chance(0.5) ? "%x" : "%04x", g.uniform(1, 0xFFFF));
        return std::string(buffer);
      };
      if (g.chance(0.5)) {
        s = hex_group();
        for (int i = 0; i < 7; ++i) s += ":" + hex_group();
      } else {
        s = g.pick(std::vector<std::string>{"2001:db8::", "fe80::", "2409:8a00::", "240e:3a1:"});
        if (s.back() != ':' || s[s.size() - 2] != ':') s += hex_group() + "::";
        s += hex_group() + ":" + hex_group();
      }
      break;
    }
    case FindingType::kCnPassport: s = g.passport(); break;
    case FindingType::kHkId: {
      const std::string body = g.hk_body();
      const char check = hk_check(body);
      s = g.chance(0.7) ? body + "(" + check + ")" : body + check;
      break;
    }
    case FindingType::kMacauId:
      s = std::string(1, g.pick(std::vector<char>{'1', '5', '7', '8'})) + g.digits(6) +
          (g.chance(0.7) ? "(" + g.digits(1) + ")" : "/" + g.digits(1));
      break;
    case FindingType::kTwId: {
      const std::string body = g.tw_body();
      s = body + tw_check(body);
      break;
    }
    case FindingType::kIban:
      s = g.iban_compact();
      if (separated) s = g.group(s, std::vector<int>(9, 4), " ");
      break;
    case FindingType::kCnLicensePlate: {
      static const std::vector<std::string> kProvinces = {"京", "沪", "粤", "浙", "苏",
                                                          "川", "鲁", "渝", "闽", "琼"};
      std::string tail;
      switch (g.uniform(0, 3)) {
        case 0: tail = g.digits(5); break;
        case 1: tail = std::string(1, g.upper_no_io()) + g.digits(4); break;
        case 2:
          tail = std::string(1, g.chance(0.5) ? 'D' : 'F') + g.upper_no_io() + g.digits(4);
          break;
        default: tail = g.digits(5) + (g.chance(0.5) ? "D" : "F"); break;
      }
      s = g.pick(kProvinces) + std::string(1, g.upper_no_io()) +
          g.pick(std::vector<std::string>{"", "", "·", " "}) + tail;
      break;
    }
    default: break;  // keyword and the other configured types: never drawn
  }
  if (g.chance(0.2)) {
    s = full_width(s);
    if (g.chance(0.5)) {
      std::string wide_spaces;
      for (char c : s) wide_spaces += c == ' ' ? std::string("\xE3\x80\x80") : std::string(1, c);
      s = wide_spaces;
    }
  }
  return s;
}

// A phrase holding a look-alike that no detector may report.
std::string look_alike(Generator& g) {
  switch (g.uniform(0, 15)) {  // 7 (fixed phrases) weighs more: those are the common ones
    case 0: {                  // resident ID with a wrong check digit
      std::string id = g.resident_id();
      id[17] = id[17] == '0' ? '1' : id[17] == 'X' ? '5' : static_cast<char>(id[17] - 1);
      return "身份证" + id + "有误";
    }
    case 1: {  // UnionPay number failing Luhn
      std::string card = g.card_number();
      card.back() = static_cast<char>('0' + (card.back() - '0' + g.uniform(1, 9)) % 10);
      return g.chance(0.5) ? "卡号" + card + "无效"
                           : "card " + g.group(card, {4, 4, 4, 4}, " ") + " declined";
    }
    case 2: {  // credit code with a wrong check character
      std::string code = g.credit_code();
      code.back() = code.back() == '0' ? '1' : '0';
      return "信用代码" + code + "错误";
    }
    case 3: {
      const std::string body = g.tw_body();
      return "ID " + body + static_cast<char>('0' + (tw_check(body) - '0' + 1) % 10) + " invalid";
    }
    case 4: {
      const std::string body = g.hk_body();
      const char check = hk_check(body) == '0' ? '1' : '0';
      return "HKID " + body + "(" + check + ")" + " invalid";
    }
    case 5: {
      std::string iban = g.iban_compact();
      iban[2] = static_cast<char>('0' + (iban[2] - '0' + 1) % 10);
      return "IBAN " + iban + " rejected";
    }
    case 6: return "订单号" + g.birth_date() + g.digits(g.chance(0.5) ? 6 : 12) + "已发货";
    case 7: {
      static const std::vector<std::string> kFixed = {
          "日期2023-12-01",        "on 2024/01/15", "2023年12月01日",    "截止2025.06.30",
          "价格¥1,234.56元",       "合计￥88.00",   "total $12,345.67",  "RMB 3,999",
          "版本1.2.3.4.5",         "v2.10.3.1",     "build 3.1.4.1.5.9", "v1.0.0",
          "12:30:45开会",          "at 08:00",      "23:59:59截止",      "MAC 00:1A:2B:3C:4D:5E",
          "mac 3c-22-fb-7a-10-0e", "京A1234",       "第0042号"};
      return g.pick(kFixed);
    }
    case 8:
    case 9:
      return g.pick(std::vector<std::string>{"SF", "YT", "JD", "ZTO"}) +
             g.digits(g.uniform(12, 13)) + "快递";
    case 13:
      return "号码1" + std::string(1, g.pick(std::vector<char>{'0', '1', '2'})) + g.digits(9) +
             "不存在";
    case 14:
      return g.pick(std::vector<std::string>{"座机010-", "tel 0755-", "电话021-"}) + g.digits(8);
    default: return "共计" + g.digits(7) + "件";
  }
}

const char* label(FindingType type, bool chinese) {
  static const std::array<const char*, kTypes> kCn = {
      "身份证号", "统一社会信用代码", "手机",       "卡号",       "邮箱", "服务器", "地址",
      "护照",     "香港身份证",       "澳门身份证", "台湾身份证", "账户", "车牌"};
  static const std::array<const char*, kTypes> kEn = {
      "ID number", "credit code", "mobile",   "card",      "email", "server", "address",
      "passport",  "HKID",        "Macau ID", "Taiwan ID", "IBAN",  "plate"};
  return (chinese ? kCn : kEn)[static_cast<size_t>(type)];
}

Record make_record(Generator& g) {
  static const std::vector<std::string> kCnNames = {"张三", "李四", "王芳", "刘伟", "陈静", "客户"};
  static const std::vector<std::string> kEnNames = {"Alice", "Bob Chen", "Mr. Wang",
                                                    "the customer"};
  Record r;
  if (g.chance(0.3)) {  // look-alikes only
    const int count = g.uniform(1, 3);
    for (int i = 0; i < count; ++i) r.text += look_alike(g) + (g.chance(0.5) ? "，" : ". ");
    return r;
  }
  const auto type = static_cast<FindingType>(g.uniform(0, static_cast<int>(kTypes) - 1));
  const bool chinese = g.chance(0.6);
  const std::string id = identifier(g, type);
  static const std::vector<std::string> kCnTemplates = {
      "{N}的{L}是{ID}，请核实。", "{L}{ID}", "请把{L}：{ID}发给我", "已登记{ID}为{N}的{L}。"};
  static const std::vector<std::string> kEnTemplates = {
      "Dear {N}, your {L} {ID} has been updated.", "{L}: {ID}", "Please verify ({ID}) for {N}."};
  const std::string& pattern = g.pick(chinese ? kCnTemplates : kEnTemplates);
  const auto expand = [&](std::string part) {
    for (const auto& [key, value] :
         {std::pair<std::string, std::string>{"{N}", g.pick(chinese ? kCnNames : kEnNames)},
          {"{L}", label(type, chinese)}}) {
      for (size_t at = part.find(key); at != std::string::npos; at = part.find(key)) {
        part.replace(at, key.size(), value);
      }
    }
    return part;
  };
  const size_t slot = pattern.find("{ID}");
  r.text = expand(pattern.substr(0, slot));
  r.expected.push_back({type, r.text.size(), r.text.size() + id.size()});
  r.planted.push_back(id);
  r.text += id + expand(pattern.substr(slot + 4));
  if (g.chance(0.3)) r.text += " " + look_alike(g) + "。";
  return r;
}

}  // namespace

CorpusGenerator::CorpusGenerator(unsigned seed) : generator_(std::make_unique<Generator>(seed)) {}
CorpusGenerator::~CorpusGenerator() = default;

Record CorpusGenerator::next() { return make_record(*generator_); }

}  // namespace mmserve::privacy_corpus
