// Check digits and structural rules of the identifiers the detectors confirm. Each function is
// pure (no state, no allocation that outlives it, no exceptions for any input): thread-safe.
// Inputs are compact ASCII strings (no separators); anything malformed is simply "not valid".
#pragma once

#include <string_view>

namespace mmserve::privacy {

struct CivilDate {
  int year;
  int month;  // 1..12
  int day;    // 1..31
};

// Today's date in UTC, from the system clock.
CivilDate today_utc();

// True for a real proleptic Gregorian date (leap years included).
bool is_valid_civil_date(int year, int month, int day);

// True when the two digits are a province-level administrative code of GB/T 2260 (11-15,
// 21-23, 31-37, 41-46, 50-54, 61-65), Taiwan 71, Hong Kong 81, Macau 82, or 83 (residence
// permits for Taiwan residents).
bool is_cn_province_code(std::string_view two_digits);

// GB 11643 check character ('0'-'9' or 'X') of the first 17 digits; '\0' when `first17` is not
// exactly 17 ASCII digits. Weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, sum mod 11 indexes
// "10X98765432".
char gb11643_check_char(std::string_view first17);

// The 18-character resident ID has a province prefix, a birth date YYYYMMDD in characters 7-14
// that is a real date from 1900-01-01 to `today`, and the right check character (uppercase 'X'
// or lowercase 'x'). `structure_only` skips the check character (used to tell a mistyped ID
// from another number).
bool is_valid_cn_resident_id(std::string_view id, CivilDate today, bool structure_only = false);

// GB 32100 check character of the first 17 characters, over the alphabet
// "0123456789ABCDEFGHJKLMNPQRTUWXY" (no I O S V Z) with weights 3^i mod 31; '\0' when an
// input character is outside the alphabet or the length is not 17.
char gb32100_check_char(std::string_view first17);

// GB 11714 check character ('0'-'9' or 'X') of the 8-character body of an organization code
// (digits and uppercase letters, A = 10 ... Z = 35): weights 3 7 9 10 5 8 4 2, check =
// 11 - sum mod 11, 10 written 'X' and 11 written '0'; '\0' when malformed.
char gb11714_check_char(std::string_view first8);

// A full unified social credit code: 18 uppercase characters, a registration-department code
// (1-9, A, N, Y) with one of its organization categories, a region code in characters 3-8 whose
// province is known (or 10 for central-level bodies), the organization code of characters 9-17
// with its own GB 11714 check character, and the GB 32100 check character.
bool is_valid_cn_credit_code(std::string_view code);

// Luhn (mod 10) over ASCII digits; false for an empty string or any non-digit.
bool luhn_valid(std::string_view digits);

// The IBAN length registered for a country code ("DE" -> 22), or 0 when not in our table (the
// 70+ countries of the SWIFT IBAN registry that use it, all of the most used ones).
int iban_length(std::string_view country);

// A compact uppercase IBAN: known country, its length, two check digits, alphanumeric BBAN,
// and mod 97 == 1 after moving the first four characters to the end (ISO 13616 / ISO 7064).
bool is_valid_iban(std::string_view iban);

// Taiwan national ID: a letter, 1/2 (or 8/9, residence certificates since 2021), 8 digits, the
// last a check digit: the letter's two-digit code weighted 1 and 9, then 8 7 6 5 4 3 2 1 1,
// sum mod 10 == 0.
bool is_valid_tw_id(std::string_view id);

// Hong Kong identity card check character ('0'-'9' or 'A') of 1 or 2 uppercase letters and 6
// digits ("A123456"); '\0' when malformed. A single letter is preceded by a space worth 36;
// weights 9 8 7 6 5 4 3 2; check = (11 - sum mod 11) mod 11, 10 written 'A'.
char hk_id_check_char(std::string_view body);

// Body (as above) followed by its check character ("A1234563").
bool is_valid_hk_id(std::string_view id);

}  // namespace mmserve::privacy
