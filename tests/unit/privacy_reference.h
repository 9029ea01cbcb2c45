// Reference implementations for the privacy tests, written independently of src/privacy/ so
// that a test compares two codings of the same standard rather than the code with itself.
#pragma once

#include <string>

namespace mmserve::privacy_test {

// GB 11643: the weight of the i-th digit from the left is 2^(17-i) mod 11; the check value
// makes the weighted sum (check weighted 1) equal 1 mod 11.
inline char reference_id_check(const std::string& first17) {
  int sum = 0;
  for (int i = 0; i < 17; ++i) {
    int weight = 1;
    for (int k = 0; k < 17 - i; ++k) {
      weight = weight * 2 % 11;
    }
    sum += (first17[i] - '0') * weight;
  }
  const int value = (12 - sum % 11) % 11;
  return value == 10 ? 'X' : static_cast<char>('0' + value);
}

}  // namespace mmserve::privacy_test
