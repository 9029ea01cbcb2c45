// The sensitive-data detectors (privacy/detectors.h) and the text normalizer under them: every
// type inside Chinese and English text, full-width forms, separators, exact byte spans in the
// original text, look-alikes that must not match, and ill-formed input.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "privacy/detectors.h"
#include "privacy/text_normalizer.h"

namespace {

using namespace mmserve::privacy;

ScanOptions options() {
  ScanOptions o;
  o.today = CivilDate{2026, 12, 1};
  return o;
}

// The only finding of `text` is `value` (a substring of it), of this type.
void expect_only(const std::string& text, const std::string& value, FindingType type,
                 bool verified) {
  const size_t at = text.find(value);
  ASSERT_NE(at, std::string::npos) << value;
  const std::vector<Finding> findings = scan(text, options());
  ASSERT_EQ(findings.size(), 1u) << text;
  EXPECT_EQ(finding_type_name(findings[0].type), std::string(finding_type_name(type))) << text;
  EXPECT_EQ(findings[0].begin, at) << text;
  EXPECT_EQ(findings[0].end, at + value.size()) << text;
  EXPECT_EQ(findings[0].checksum_verified, verified) << text;
}

void expect_none(const std::string& text) {
  const std::vector<Finding> findings = scan(text, options());
  EXPECT_TRUE(findings.empty()) << text << " -> " << finding_type_name(findings[0].type) << " @"
                                << findings[0].begin;
}

TEST(PrivacyFinding, NamesRoundTrip) {
  for (size_t i = 0; i < kFindingTypeCount; ++i) {
    const auto type = static_cast<FindingType>(i);
    EXPECT_EQ(parse_finding_type(finding_type_name(type)), type);
  }
  EXPECT_STREQ(finding_type_name(FindingType::kCnResidentId), "cn_resident_id");
  EXPECT_STREQ(finding_type_name(FindingType::kCnLicensePlate), "cn_license_plate");
  EXPECT_EQ(parse_finding_type("Bank_Card"), std::nullopt);
  EXPECT_EQ(parse_finding_type(""), std::nullopt);
}

TEST(PrivacyNormalizer, FoldsFullWidthAndKeepsByteSpans) {
  const std::string text =
      "\xEF\xBC\x91\xEF\xBC\xA1\xEF\xBD\x82\xEF\xBC\xA0\xE3\x80\x80-\xE2\x80\x94\xE3\x80\x82";
  // "１Ａｂ＠　-—。"
  const NormalizedText n = normalize_text(text);
  ASSERT_EQ(n.size(), 8u);
  EXPECT_EQ(n.chars, std::u32string(U"1Ab@ --\u3002"));
  EXPECT_EQ(n.byte_begin(1), 3u);
  EXPECT_EQ(n.byte_end(4), 12u);
  EXPECT_EQ(n.byte_end(8), text.size());
}

TEST(PrivacyNormalizer, IllFormedBytesAreSingleUnits) {
  const std::string text =
      "a\xC0\x80\xE5\x88"
      "b\xF4\x90\x80\x80";
  const NormalizedText n = normalize_text(text);
  ASSERT_EQ(n.size(), 10u);
  EXPECT_EQ(n.chars[0], U'a');
  EXPECT_EQ(n.chars[1], kInvalidUnit);
  EXPECT_EQ(n.chars[5], U'b');
  EXPECT_EQ(n.offsets.back(), text.size());
}

TEST(PrivacyDetectors, ResidentIdInChineseText) {
  expect_only("身份证:110101199003071233", "110101199003071233", FindingType::kCnResidentId, true);
  expect_only("身份证号11010519491231002X，请核对", "11010519491231002X",
              FindingType::kCnResidentId, true);
  expect_only("证件 110101 19900307 1233 已登记", "110101 19900307 1233",
              FindingType::kCnResidentId, true);
  // Full-width digits and colon: the span covers the full-width bytes.
  const std::string wide =
      "\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x95"
      "\xEF\xBC\x91\xEF\xBC\x99\xEF\xBC\x94\xEF\xBC\x99\xEF\xBC\x91\xEF\xBC\x92"
      "\xEF\xBC\x93\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x90\xEF\xBC\x92\xEF\xBC\xB8";
  expect_only("身份证\xEF\xBC\x9A" + wide + "。", wide, FindingType::kCnResidentId, true);
}

TEST(PrivacyDetectors, MobileNumbers) {
  expect_only("手机13812345678。", "13812345678", FindingType::kCnMobile, false);
  expect_only("call 138-1234-5678 today", "138-1234-5678", FindingType::kCnMobile, false);
  expect_only("电话+86 138 1234 5678", "+86 138 1234 5678", FindingType::kCnMobile, false);
  expect_only("电话008613812345678", "008613812345678", FindingType::kCnMobile, false);
  expect_only("联系19912345678或", "19912345678", FindingType::kCnMobile, false);
  expect_none("号码19412345678");  // 194 is not allocated
  expect_none("号码12812345678");
  expect_none("编号138123456789");  // 12 digits: not a mobile number
}

TEST(PrivacyDetectors, BankCards) {
  expect_only("卡号6222021234567890128", "6222021234567890128", FindingType::kBankCard, true);
  expect_only("卡号6222 0212 3456 7890 128付款", "6222 0212 3456 7890 128", FindingType::kBankCard,
              true);
  expect_only("card 4111-1111-1111-1111.", "4111-1111-1111-1111", FindingType::kBankCard, true);
  expect_only("mc 5555555555554444", "5555555555554444", FindingType::kBankCard, true);
  expect_only("mc 2221000000000009", "2221000000000009", FindingType::kBankCard, true);
  expect_only("amex 378282246310005", "378282246310005", FindingType::kBankCard, true);
  expect_none("卡号6222021234567890123");   // Luhn fails
  expect_none("号 1234567812345670");       // Luhn passes, no known IIN
  expect_none("卡号62220212345678901280");  // glued to a further digit
}

TEST(PrivacyDetectors, CreditCodeEmailAddresses) {
  expect_only("统一社会信用代码91350100M000100Y43。", "91350100M000100Y43",
              FindingType::kCnCreditCode, true);
  expect_none("代码91350100M000100Y44");
  expect_only("邮箱zhang.san@example.com。", "zhang.san@example.com", FindingType::kEmail, false);
  expect_only("mail 13812345678@qq.com now", "13812345678@qq.com", FindingType::kEmail, false);
  expect_only("服务器192.168.1.10上", "192.168.1.10", FindingType::kIpv4, false);
  expect_only("地址2001:db8::8a2e:370:7334。", "2001:db8::8a2e:370:7334", FindingType::kIpv6,
              false);
  expect_only("link fe80::1.", "fe80::1", FindingType::kIpv6, false);
  expect_none("版本1.2.3.4.5发布");
  expect_none("version v1.2.3.4");
  expect_none("会议12:30:45开始");
  expect_none("MAC 00:1A:2B:3C:4D:5E");
  expect_none("std::vector and a::b");
  expect_none("ip 256.1.1.1");
}

TEST(PrivacyDetectors, TravelDocumentsAndIban) {
  expect_only("护照E12345678。", "E12345678", FindingType::kCnPassport, false);
  expect_only("护照号EA1234567", "EA1234567", FindingType::kCnPassport, false);
  expect_only("香港身份证A123456(3)", "A123456(3)", FindingType::kHkId, true);
  expect_only("HKID G123456A ok", "G123456A", FindingType::kHkId, true);
  expect_none("香港身份证A123456(4)");
  expect_only("澳门身份证1234567(8)", "1234567(8)", FindingType::kMacauId, false);
  expect_only("澳门 5123456/7 号", "5123456/7", FindingType::kMacauId, false);
  expect_only("台湾身份证A123456789。", "A123456789", FindingType::kTwId, true);
  expect_none("台湾身份证A123456788");
  expect_only("IBAN DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00",
              FindingType::kIban, true);
  expect_only("账户GB82WEST12345698765432。", "GB82WEST12345698765432", FindingType::kIban, true);
  expect_none("IBAN DE88 3704 0044 0532 0130 00");
}

TEST(PrivacyDetectors, LicensePlates) {
  expect_only("车牌京A12345停", "京A12345", FindingType::kCnLicensePlate, false);
  expect_only("车牌粤B·D12345", "粤B·D12345", FindingType::kCnLicensePlate, false);
  expect_only("车牌沪A 12345D", "沪A 12345D", FindingType::kCnLicensePlate, false);
  expect_none("北京ABCDEF");
  expect_none("京A1234");
}

TEST(PrivacyDetectors, LookAlikesDoNotMatch) {
  expect_none("订单号202312011234567890，请查收");
  expect_none("日期2023-12-01，时间 2023/12/01");
  expect_none("价格¥1,234.56元，合计12,345,678.90");
  expect_none("快递单号SF1234567890123已发出");
  expect_none("身份证110101199003071234");  // wrong check digit
  expect_none("编号1101011990030712330");   // 18 valid digits glued to one more
  expect_none("金额13812345678.50元");      // a decimal, not a phone number
  expect_none("");
}

TEST(PrivacyDetectors, SeparatedRunsSplitOnlyBetweenNumbers) {
  // One separated number that fails its checks does not yield a shorter card inside it
  // (6222 0212 3456 7894 alone would pass Luhn).
  ASSERT_TRUE(mmserve::privacy::luhn_valid("6222021234567894"));
  expect_none("卡号6222 0212 3456 7894 123");
  // A date and a phone number: the separator changes between them.
  expect_only("2023-12-01 13812345678", "13812345678", FindingType::kCnMobile, false);
  // Two numbers in one space-separated run (22 digits): both found.
  const std::string text = "电话138 1234 5678 139 1234 5678";
  const std::vector<Finding> findings = scan(text, options());
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(text.substr(findings[0].begin, findings[0].end - findings[0].begin), "138 1234 5678");
  EXPECT_EQ(text.substr(findings[1].begin, findings[1].end - findings[1].begin), "139 1234 5678");
  // A run that has no identifier's shape splits at any separator; a group glued to ':' (a
  // time) or followed by a CJK date is not part of the number before it.
  expect_only("手机17334775312 2023年12月01日", "17334775312", FindingType::kCnMobile, false);
  expect_only("card 5575770609127826 23:59:59", "5575770609127826", FindingType::kBankCard, true);
  expect_only("卡6220 3167 9851 8743 12:30", "6220 3167 9851 8743", FindingType::kBankCard, true);
  const std::string two = "手机13812345678 13912345678：张三";
  ASSERT_EQ(scan(two, options()).size(), 2u);
  EXPECT_EQ(scan(two, options())[1].begin, two.find("139"));
  // A group glued to letters is a code, the group after it a number of its own.
  expect_only("型号mc2 2221000000000009", "2221000000000009", FindingType::kBankCard, true);
}

TEST(PrivacyDetectors, SeveralFindingsInOrder) {
  const std::string text = "张三，身份证110101199003071233，手机13812345678，邮箱a@b.cn";
  const std::vector<Finding> findings = scan(text, options());
  ASSERT_EQ(findings.size(), 3u);
  EXPECT_EQ(findings[0].type, FindingType::kCnResidentId);
  EXPECT_EQ(findings[1].type, FindingType::kCnMobile);
  EXPECT_EQ(findings[2].type, FindingType::kEmail);
  EXPECT_EQ(text.substr(findings[2].begin, findings[2].end - findings[2].begin), "a@b.cn");
}

TEST(PrivacyDetectors, Keywords) {
  ScanOptions o = options();
  o.keywords = {"Apollo", "华为项目", ""};
  const std::string text = "讨论APOLLO和华为项目，apollonia 不算";
  const std::vector<Finding> findings = scan(text, o);
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].type, FindingType::kKeyword);
  EXPECT_EQ(text.substr(findings[0].begin, 6), "APOLLO");
  EXPECT_EQ(text.substr(findings[1].begin, findings[1].end - findings[1].begin), "华为项目");
  EXPECT_FALSE(findings[1].checksum_verified);
}

TEST(PrivacyDetectors, BirthDateAfterTodayIsNoId) {
  ScanOptions o;
  o.today = CivilDate{1990, 3, 6};
  EXPECT_TRUE(scan("身份证110101199003071233", o).empty());
  o.today = CivilDate{1990, 3, 7};
  EXPECT_EQ(scan("身份证110101199003071233", o).size(), 1u);
}

TEST(PrivacyDetectors, ArbitraryBytesNeverThrowAndSpansStayInside) {
  std::mt19937 rng(20261201);
  const std::string alphabet = "0123456789 -:.@()/+XEAab\xEF\xBC\x91\xE4\xBA\xAC\xC0\xFF";
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const size_t length = rng() % 64;
    for (size_t i = 0; i < length; ++i) text.push_back(alphabet[rng() % alphabet.size()]);
    std::vector<Finding> findings;
    ASSERT_NO_THROW(findings = scan(text, options()));
    for (const Finding& f : findings) {
      EXPECT_LT(f.begin, f.end);
      EXPECT_LE(f.end, text.size());
    }
  }
}

TEST(PrivacyDetectors, LongInputsScanInLinearTime) {
  // Shapes that would make a backtracking matcher or a naive range search quadratic (about
  // 10^10 steps at this size): each must finish well within the bound, sanitizers included.
  const std::vector<std::string> units = {"1 ", "1-", "a@", "1.", "::", "京A", "a.", "9"};
  for (const std::string& unit : units) {
    std::string text;
    while (text.size() < 200000) text += unit;
    const auto start = std::chrono::steady_clock::now();
    EXPECT_NO_THROW(scan(text, options())) << unit;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << unit;
  }
}

}  // namespace
