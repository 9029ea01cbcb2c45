// Fuzzes the image inputs of JSON requests: executors::decode_base64 on the raw input, and
// executors::image_from_string (data URLs, bare base64, http(s) URLs) with a policy that allows no
// host.
//
// Invariants: nothing reaches for the network or a file (NoIoScope: a socket, connect, DNS lookup
// or open aborts); decode_base64 accepts exactly the inputs a reference decoder written here
// accepts (standard or URL-safe alphabet, whitespace skipped, '=' only at the end, at most two,
// no dangling 6-bit group) and yields the same bytes; an http(s) URL is always refused with
// kInvalidInput; every refusal is Error(kInvalidInput) naming the field; a decoded picture has
// width * height * 3 bytes within the limits. Plus ASan and UBSan.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "executors/local/image_input.h"
#include "no_io_guard.h"

namespace {

// Base64 as decode_base64 documents it, written independently.
std::optional<std::vector<uint8_t>> reference_base64(std::string_view text) {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  int padding = 0;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isspace(c) != 0) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    if (c >= '0' && c <= '9') v = c - '0' + 52;
    if (c == '+' || c == '-') v = 62;
    if (c == '/' || c == '_') v = 63;
    if (v < 0 || padding > 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (bits >= 6 || padding > 2) return std::nullopt;
  return out;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  mmserve::executors::ImageInputPolicy policy;
  policy.limits = {.max_bytes = 64 << 10, .max_pixels = 1 << 20};
  policy.allowed_hosts.clear();
  policy.fetch_timeout_seconds = 1;
  mmserve::fuzz::NoIoScope no_io;

  const auto expected = reference_base64(text);
  try {
    const std::vector<uint8_t> bytes = mmserve::executors::decode_base64(text, "image");
    FUZZ_CHECK(expected.has_value());
    FUZZ_CHECK(bytes == *expected);
  } catch (const mmserve::Error& e) {
    mmserve::fuzz::expect_code(e, {mmserve::ErrorCode::kInvalidInput});
    mmserve::fuzz::expect_field(e, "image");
    FUZZ_CHECK(!expected.has_value());
  }

  try {
    const mmserve::media::Image image = mmserve::executors::image_from_string(text, policy, "image");
    FUZZ_CHECK(!starts_with_nocase(text, "http://") && !starts_with_nocase(text, "https://"));
    FUZZ_CHECK(image.width > 0 && image.height > 0);
    FUZZ_CHECK(static_cast<int64_t>(image.width) * image.height <= policy.limits.max_pixels);
    FUZZ_CHECK(image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3);
  } catch (const mmserve::Error& e) {
    mmserve::fuzz::expect_code(e, {mmserve::ErrorCode::kInvalidInput});
    mmserve::fuzz::expect_field(e, "image");
  }
  return 0;
}
