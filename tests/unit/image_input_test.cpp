// Image inputs of HTTP requests: base64 and data URLs decode, bad ones are refused naming the
// field, and remote URLs are refused unless their host is allowed.
#include "executors/local/image_input.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "image_test_support.h"

using namespace mmserve;
using namespace mmserve::testing;

namespace {

std::string base64(const Bytes& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = bytes[i] << 16 | bytes[i + 1] << 8 | bytes[i + 2];
    for (int k = 3; k >= 0; --k) out += alphabet[(v >> (6 * k)) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = bytes[i] << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = bytes[i] << 16 | bytes[i + 1] << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string error_of(const std::string& value, const executors::ImageInputPolicy& policy = {}) {
  try {
    executors::image_from_string(value, policy, "messages[0].content[1].image_url.url");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "messages[0].content[1].image_url.url");
    return e.what();
  }
  ADD_FAILURE() << "accepted " << value.substr(0, 60);
  return {};
}

}  // namespace

TEST(ImageInput, Base64RoundTripsEveryLength) {
  for (size_t n = 0; n < 10; ++n) {
    Bytes bytes;
    for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(i * 37 + 11));
    EXPECT_EQ(executors::decode_base64(base64(bytes), "f"), bytes) << n;
  }
  // Whitespace (line-wrapped base64) and missing padding are accepted; URL-safe too.
  EXPECT_EQ(executors::decode_base64("aGVs\nbG8", "f"), (Bytes{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(executors::decode_base64("-_8", "f"), (Bytes{0xFB, 0xFF}));
}

TEST(ImageInput, BadBase64IsRefused) {
  EXPECT_THROW(executors::decode_base64("ab$d", "f"), Error);
  EXPECT_THROW(executors::decode_base64("abcde", "f"), Error);  // a dangling 6 bits
  EXPECT_THROW(executors::decode_base64("ab=c", "f"), Error);   // data after padding
}

TEST(ImageInput, DataUrlsAndBareBase64Decode) {
  const auto img = quadrants(10, 6);
  const std::string b64 = base64(encode_png(img));
  for (const std::string& value : {"data:image/png;base64," + b64, "DATA:image/PNG;BASE64," + b64,
                                   b64, "data:application/octet-stream;base64," + b64}) {
    const auto out = executors::image_from_string(value, {}, "input");
    EXPECT_EQ(out.width, 10);
    EXPECT_EQ(out.rgb, img.rgb);
  }
}

TEST(ImageInput, MalformedDataUrlsAreRefused) {
  EXPECT_NE(error_of("data:image/png;base64").find("no comma"), std::string::npos);
  EXPECT_NE(error_of("data:text/plain;base64,aGVsbG8=").find("not an image"), std::string::npos);
  EXPECT_NE(error_of("data:image/png,rawbytes").find("base64"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("data:image/png;base64,aGVsbG8gd29ybGQ=").find("not a JPEG"),
            std::string::npos);
}

TEST(ImageInput, OversizedBase64IsRefusedBeforeDecoding) {
  executors::ImageInputPolicy policy;
  policy.limits.max_bytes = 1000;
  const std::string big(4000, 'A');
  EXPECT_NE(error_of(big, policy).find("--max-image-bytes"), std::string::npos);
}

TEST(ImageInput, RemoteUrlsAreRefusedByDefault) {
  for (const std::string url : {"http://169.254.169.254/latest/meta-data",
                                "https://example.com/a.png", "HTTP://localhost:8080/x.jpg"}) {
    const std::string why = error_of(url);
    EXPECT_NE(why.find("--allow-image-hosts"), std::string::npos) << why;
  }
}

TEST(ImageInput, OnlyAllowedHostsAreFetched) {
  executors::ImageInputPolicy policy;
  policy.allowed_hosts = {"images.example.com"};
  // Another host, a look-alike, and user information that hides the real host are refused
  // without any connection being made.
  EXPECT_NE(error_of("http://example.com/a.png", policy).find("does not fetch"), std::string::npos);
  EXPECT_NE(error_of("http://images.example.com.evil.net/a.png", policy).find("does not fetch"),
            std::string::npos);
  EXPECT_NE(error_of("http://images.example.com@10.0.0.1/a.png", policy).find("user information"),
            std::string::npos);
}
