// The check digits and structural rules of privacy/checksums.h: published example numbers,
// values computed here by independent code, and one wrong character of each.
#include <gtest/gtest.h>

#include <string>

#include "privacy/checksums.h"
#include "privacy_reference.h"

using mmserve::privacy_test::reference_id_check;

namespace {

using namespace mmserve::privacy;

constexpr CivilDate kToday{2026, 12, 1};

// Independent Luhn: double every second digit from the right by table.
bool reference_luhn(const std::string& digits) {
  static const int kDoubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
  int sum = 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    const int d = digits[digits.size() - 1 - i] - '0';
    sum += i % 2 == 1 ? kDoubled[d] : d;
  }
  return sum % 10 == 0;
}

TEST(PrivacyChecksums, ResidentIdCheckDigit) {
  EXPECT_EQ(gb11643_check_char("11010519491231002"), 'X');  // the standard's own example
  EXPECT_EQ(gb11643_check_char("11010119900307123"), '3');
  EXPECT_EQ(gb11643_check_char("1101011990030712"), '\0');   // 16 digits
  EXPECT_EQ(gb11643_check_char("1101011990030712a"), '\0');  // not a digit
  for (const std::string body : {"44030419851111123", "62010219880808888", "33010620001231456",
                                 "81000019700101000", "53012319991010999"}) {
    EXPECT_EQ(gb11643_check_char(body), reference_id_check(body)) << body;
  }
}

TEST(PrivacyChecksums, ResidentIdStructure) {
  EXPECT_TRUE(is_valid_cn_resident_id("11010519491231002X", kToday));
  EXPECT_TRUE(is_valid_cn_resident_id("11010519491231002x", kToday));
  EXPECT_TRUE(is_valid_cn_resident_id("110101199003071233", kToday));
  EXPECT_FALSE(is_valid_cn_resident_id("110101199003071234", kToday));  // check digit
  EXPECT_FALSE(is_valid_cn_resident_id("11010519491231002", kToday));   // 17 characters
  // Region 99 and 00 do not exist; fix the check digit so only the region is wrong.
  for (const std::string body : {"99010119900307123", "00010119900307123"}) {
    EXPECT_FALSE(is_valid_cn_resident_id(body + reference_id_check(body), kToday)) << body;
  }
  // Dates: 30 February, month 13, before 1900, after today; 29 February of a leap year is fine.
  for (const std::string body :
       {"11010119900230123", "11010119901301123", "11010118991231123", "11010120261202123"}) {
    EXPECT_FALSE(is_valid_cn_resident_id(body + reference_id_check(body), kToday)) << body;
  }
  const std::string leap = "11010120000229123";
  EXPECT_TRUE(is_valid_cn_resident_id(leap + reference_id_check(leap), kToday));
  const std::string not_leap = "11010119000229123";  // 1900 is not a leap year
  EXPECT_FALSE(is_valid_cn_resident_id(not_leap + reference_id_check(not_leap), kToday));
  // A wrong check digit still has a valid structure.
  EXPECT_TRUE(is_valid_cn_resident_id("110101199003071234", kToday, /*structure_only=*/true));
}

TEST(PrivacyChecksums, CivilDatesAndProvinces) {
  EXPECT_TRUE(is_valid_civil_date(2024, 2, 29));
  EXPECT_FALSE(is_valid_civil_date(2023, 2, 29));
  EXPECT_FALSE(is_valid_civil_date(2023, 4, 31));
  EXPECT_FALSE(is_valid_civil_date(2023, 0, 1));
  EXPECT_TRUE(is_cn_province_code("11"));
  EXPECT_TRUE(is_cn_province_code("65"));
  EXPECT_TRUE(is_cn_province_code("82"));
  EXPECT_FALSE(is_cn_province_code("16"));
  EXPECT_FALSE(is_cn_province_code("10"));
  EXPECT_FALSE(is_cn_province_code("1"));
  const CivilDate today = today_utc();
  EXPECT_TRUE(is_valid_civil_date(today.year, today.month, today.day));
  EXPECT_GE(today.year, 2024);
}

TEST(PrivacyChecksums, CreditCode) {
  EXPECT_EQ(gb32100_check_char("91350100M000100Y4"), '3');
  EXPECT_TRUE(is_valid_cn_credit_code("91350100M000100Y43"));
  EXPECT_TRUE(is_valid_cn_credit_code("9144030071526726XG"));  // published codes
  EXPECT_TRUE(is_valid_cn_credit_code("91330100716105852F"));
  EXPECT_TRUE(is_valid_cn_credit_code("91110108MA01ABCD5T"));
  // GB 32100 check right, embedded organization code check (character 17) wrong.
  EXPECT_EQ(gb32100_check_char("91110108MA01ABCDE"), 'N');
  EXPECT_FALSE(is_valid_cn_credit_code("91110108MA01ABCDEN"));
  EXPECT_TRUE(is_valid_cn_credit_code("12100000400000624D"));   // central-level region 100000
  EXPECT_FALSE(is_valid_cn_credit_code("91350100M000100Y44"));  // check character
  EXPECT_FALSE(is_valid_cn_credit_code("91350100M000100Y4"));   // 17 characters
  EXPECT_FALSE(is_valid_cn_credit_code("B1350100M000100Y43"));  // no department B
  EXPECT_FALSE(is_valid_cn_credit_code("94350100M000100Y43"));  // department 9 has no category 4
  EXPECT_EQ(gb32100_check_char("91350100M000I00Y4"), '\0');     // I is not in the alphabet
  // The check character makes the weighted sum a multiple of 31; computed here from the weights
  // the standard lists.
  const int weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};
  const std::string alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
  for (const std::string body : {"91440300MA5D12345", "52100000500012345", "Y1320500123456789"}) {
    const char check = gb32100_check_char(body);
    ASSERT_NE(check, '\0') << body;
    int sum = 0;
    for (int i = 0; i < 17; ++i) sum += static_cast<int>(alphabet.find(body[i])) * weights[i];
    EXPECT_EQ((sum + static_cast<int>(alphabet.find(check))) % 31, 0) << body;
  }
}

TEST(PrivacyChecksums, OrganizationCode) {
  // By hand: 7*3 + 1*7 + 5*9 + 2*10 + 6*5 + 7*8 + 2*4 + 6*2 = 199 = 18*11 + 1: 11 - 1 = 10.
  EXPECT_EQ(gb11714_check_char("71526726"), 'X');
  // M = 22: 66 + 5 + Y (34) * 2 = 139 = 12*11 + 7: 11 - 7 = 4.
  EXPECT_EQ(gb11714_check_char("M000100Y"), '4');
  // 8*3 + 2*7 = 38 = 3*11 + 5: 6. A sum that is a multiple of 11 gives 11, written 0.
  EXPECT_EQ(gb11714_check_char("82000000"), '6');
  EXPECT_EQ(gb11714_check_char("00000000"), '0');
  EXPECT_EQ(gb11714_check_char("7152672"), '\0');
  EXPECT_EQ(gb11714_check_char("7152672a"), '\0');
}

TEST(PrivacyChecksums, Luhn) {
  EXPECT_TRUE(luhn_valid("79927398713"));
  EXPECT_FALSE(luhn_valid("79927398710"));
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("6222021234567890128"));
  EXPECT_FALSE(luhn_valid("6222021234567890123"));
  EXPECT_FALSE(luhn_valid(""));
  EXPECT_FALSE(luhn_valid("4111 1111 1111 1111"));
  std::string digits = "62284800123456789";
  for (int i = 0; i < 200; ++i) {
    digits[i % digits.size()] = static_cast<char>('0' + (i * 7 + 3) % 10);
    EXPECT_EQ(luhn_valid(digits), reference_luhn(digits)) << digits;
  }
}

TEST(PrivacyChecksums, Iban) {
  for (const char* iban :
       {"GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
        "NL91ABNA0417164300", "CH9300762011623852957"}) {
    EXPECT_TRUE(is_valid_iban(iban)) << iban;
  }
  EXPECT_FALSE(is_valid_iban("GB83WEST12345698765432"));  // check digits
  EXPECT_FALSE(is_valid_iban("GB82WEST1234569876543"));   // length for GB
  EXPECT_FALSE(is_valid_iban("ZZ82WEST12345698765432"));  // unknown country
  EXPECT_FALSE(is_valid_iban("gb82WEST12345698765432"));  // compact uppercase only
  EXPECT_EQ(iban_length("DE"), 22);
  EXPECT_EQ(iban_length("NO"), 15);
  EXPECT_EQ(iban_length("US"), 0);
  int known = 0;
  for (const char* country :
       {"AD", "AE", "AT", "BE", "BG", "BR", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI",
        "FR", "GB", "GR", "HR", "HU", "IE", "IL", "IS", "IT", "LI", "LT", "LU", "LV", "MC",
        "MT", "NL", "NO", "PL", "PT", "RO", "SA", "SE", "SI", "SK", "TR", "UA"}) {
    known += iban_length(country) > 0 ? 1 : 0;
  }
  EXPECT_EQ(known, 40);
}

TEST(PrivacyChecksums, TaiwanId) {
  EXPECT_TRUE(is_valid_tw_id("A123456789"));
  EXPECT_FALSE(is_valid_tw_id("A123456788"));
  EXPECT_FALSE(is_valid_tw_id("A323456789"));  // second digit 3
  EXPECT_FALSE(is_valid_tw_id("a123456789"));
  // Exactly one check digit completes any body.
  for (const std::string body : {"B22222222", "Z19876543", "I21111111", "O10000000"}) {
    int valid = 0;
    for (char d = '0'; d <= '9'; ++d) valid += is_valid_tw_id(body + d) ? 1 : 0;
    EXPECT_EQ(valid, 1) << body;
  }
}

TEST(PrivacyChecksums, HongKongId) {
  // Worked by hand: A = 10; 36*9 + 10*8 + 1*7 + 2*6 + 3*5 + 4*4 + 5*3 + 6*2 = 481 = 43*11 + 8.
  EXPECT_EQ(hk_id_check_char("A123456"), '3');
  EXPECT_TRUE(is_valid_hk_id("A1234563"));
  EXPECT_FALSE(is_valid_hk_id("A1234564"));
  EXPECT_EQ(hk_id_check_char("G123456"), 'A');  // 529 = 48*11 + 1: check 10
  EXPECT_TRUE(is_valid_hk_id("G123456A"));
  // Two letters: X = 33, Y = 34: 33*9 + 34*8 + 7*7 + 6*6 + 5*5 + 4*4 + 3*3 + 2*2 = 708 = 64*11 + 4.
  EXPECT_EQ(hk_id_check_char("XY765432"), '7');
  EXPECT_EQ(hk_id_check_char("A12345"), '\0');
  EXPECT_EQ(hk_id_check_char("a123456"), '\0');
  EXPECT_FALSE(is_valid_hk_id(""));
}

}  // namespace
