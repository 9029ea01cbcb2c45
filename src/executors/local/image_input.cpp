#include "executors/local/image_input.h"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <span>

#include "core/error.h"

namespace mmserve::executors {
namespace {

[[noreturn]] void invalid(const std::string& field, const std::string& why) {
  throw Error(ErrorCode::kInvalidInput, "invalid image in '" + field + "': " + why, field);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string human_size(uint64_t bytes) {
  if (bytes >= (1u << 20)) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10)) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

constexpr std::array<int8_t, 256> base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  t['-'] = 62;  // URL-safe alphabet
  t['_'] = 63;
  return t;
}

struct Url {
  std::string scheme, host, authority, path;
};

Url parse_url(std::string_view url, const std::string& field) {
  Url u;
  const auto colon = url.find("://");
  u.scheme = lower(url.substr(0, colon));
  std::string_view rest = url.substr(colon + 3);
  const auto end = rest.find_first_of("/?#");
  u.authority = lower(rest.substr(0, end));
  u.path = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (const auto hash = u.path.find('#'); hash != std::string::npos) u.path.resize(hash);
  if (u.path.empty() || u.path[0] != '/') u.path = "/" + u.path;
  if (u.authority.empty()) invalid(field, "the image URL has no host");
  if (u.authority.find('@') != std::string::npos) {
    invalid(field, "image URLs with user information are not accepted");
  }
  u.host = u.authority;
  if (u.host.starts_with("[")) {
    u.host = u.host.substr(0, u.host.find(']') + 1);
  } else if (const auto c = u.host.rfind(':'); c != std::string::npos) {
    u.host.resize(c);
  }
  return u;
}

std::string fetch(std::string_view url, const ImageInputPolicy& policy, const std::string& field) {
  const Url u = parse_url(url, field);
  const bool allowed = std::ranges::any_of(policy.allowed_hosts, [&](const std::string& h) {
    const std::string entry = lower(h);
    return entry == u.host || entry == u.authority;
  });
  if (!allowed) {
    throw Error(ErrorCode::kInvalidInput,
                "invalid image in '" + field + "': this server does not fetch images from " +
                    u.host +
                    " (remote image URLs are refused unless the host is allowed with "
                    "--allow-image-hosts); send the image as a data URL or base64 instead",
                field);
  }
  httplib::Client client(u.scheme + "://" + u.authority);
  client.set_connection_timeout(policy.fetch_timeout_seconds, 0);
  client.set_read_timeout(policy.fetch_timeout_seconds, 0);
  client.set_follow_location(false);  // a redirect could lead to a host that is not allowed
  std::string body;
  int status = 0;
  bool too_large = false;
  const auto result = client.Get(
      u.path, httplib::Headers{},
      [&](const httplib::Response& r) {
        status = r.status;
        return status == 200;
      },
      [&](const char* data, size_t length) {
        if (body.size() + length > policy.limits.max_bytes) {
          too_large = true;
          return false;
        }
        body.append(data, length);
        return true;
      });
  if (too_large) {
    invalid(field, "the image at " + std::string(url) + " is over the limit of " +
                       human_size(policy.limits.max_bytes) + " (--max-image-bytes)");
  }
  if (status != 0 && status != 200) {
    invalid(field, "fetching " + std::string(url) + " answered HTTP " + std::to_string(status));
  }
  if (!result) {
    invalid(field,
            "cannot fetch " + std::string(url) + " (" + httplib::to_string(result.error()) + ")");
  }
  return body;
}

}  // namespace

ImageInputPolicy image_policy(const runtime::RuntimeOptions& options) {
  return {.limits = options.image_limits, .allowed_hosts = options.image_hosts};
}

std::vector<uint8_t> decode_base64(std::string_view text, const std::string& field) {
  static constexpr auto kTable = base64_table();
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c) != 0) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int v = kTable[c];
    if (v < 0 || padding > 0) {
      invalid(field, "not valid base64 (unexpected character at offset " + std::to_string(i) + ")");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6 || padding > 2) invalid(field, "not valid base64 (wrong length)");
  return out;
}

media::Image image_from_bytes(std::string_view bytes, const ImageInputPolicy& policy,
                              const std::string& field) {
  const std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return media::decode_image(span, policy.limits, field);
}

media::Image image_from_string(std::string_view value, const ImageInputPolicy& policy,
                               const std::string& field) {
  if (value.empty()) invalid(field, "the image is empty");
  const std::string head = lower(value.substr(0, 8));
  if (head.starts_with("http://") || head.starts_with("https://")) {
    return image_from_bytes(fetch(value, policy, field), policy, field);
  }
  std::string_view payload = value;
  if (head.starts_with("data:")) {
    const auto comma = value.find(',');
    if (comma == std::string_view::npos) invalid(field, "malformed data URL (no comma)");
    const std::string meta = lower(value.substr(5, comma - 5));
    if (!meta.starts_with("image/") && !meta.starts_with("application/octet-stream")) {
      invalid(field, "the data URL is '" + meta.substr(0, meta.find(';')) + "', not an image");
    }
    if (meta.find(";base64") == std::string::npos) {
      invalid(field, "the data URL must be base64-encoded (data:image/...;base64,...)");
    }
    payload = value.substr(comma + 1);
  }
  // Refuse an oversized image before decoding its base64.
  if (payload.size() / 4 * 3 > policy.limits.max_bytes + 3) {
    invalid(field, "the image is over the limit of " + human_size(policy.limits.max_bytes) +
                       " (--max-image-bytes)");
  }
  const std::vector<uint8_t> bytes = decode_base64(payload, field);
  return media::decode_image(bytes, policy.limits, field);
}

}  // namespace mmserve::executors
