// What one API key may do and how much: shared by the key store (store/key_store.h, which keeps
// them in the database) and the pipeline (pipeline/call.h's Caller, which the stages read).
// Plain data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mmserve {

// Empty lists allow everything of their kind.
struct AccessScopes {
  std::vector<std::string> tasks;      // "text-gen", "image-caption", "speech-transcribe", "embed"
  std::vector<std::string> models;     // registry names or aliases
  std::vector<std::string> endpoints;  // paths; a trailing '*' matches any rest ("/v1/audio/*")
  bool cloud = false;                  // may be routed to the cloud endpoint
  bool admin = false;                  // the admin endpoints (model load/unload), all usage
  bool capture = false;                // its completed calls are captured (serve --capture opt-in)
};

// Zero: no limit.
struct RateLimits {
  int64_t requests_per_minute = 0;
  int64_t tokens_per_minute = 0;  // prompt + completion
  int64_t audio_seconds_per_day = 0;
  int64_t concurrent_requests = 0;
  bool any() const {
    return requests_per_minute > 0 || tokens_per_minute > 0 || audio_seconds_per_day > 0 ||
           concurrent_requests > 0;
  }
};

// A scope list as the key database stores it and `mmserve keys` shows it: "a,b,c".
std::string comma_joined(const std::vector<std::string>& items);

// Whether `path` is one of `patterns` (exact, or a prefix before a trailing '*'); an empty list
// allows every path.
bool endpoint_allowed(const std::vector<std::string>& patterns, std::string_view path);
// Whether `value` is in `allowed`; an empty list allows everything.
bool listed_or_open(const std::vector<std::string>& allowed, std::string_view value);

}  // namespace mmserve
