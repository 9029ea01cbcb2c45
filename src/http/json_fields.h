// Typed access to request JSON fields. Every failure is Error(kInvalidInput) naming the field
// by its full path ("parameters.max_tokens"), so clients learn exactly what to fix.
// Stateless and thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mmserve::http {

using Json = nlohmann::json;

// No request needs more; deeper bodies are refused before parsing (stack safety).
inline constexpr size_t kMaxJsonDepth = 64;

// Parses a request body that must be a JSON object, at most kMaxJsonDepth levels deep.
Json parse_json_object(const std::string& body);

// Each returns nullopt when the field is absent or null, and throws when it has the wrong type.
std::optional<std::string> opt_string(const Json& obj, const char* key, const std::string& path);
std::optional<double> opt_number(const Json& obj, const char* key, const std::string& path);
std::optional<int64_t> opt_integer(const Json& obj, const char* key, const std::string& path);
std::optional<bool> opt_bool(const Json& obj, const char* key, const std::string& path);
// An object field (nullopt when absent); throws when present but not an object.
const Json* opt_object(const Json& obj, const char* key, const std::string& path);
// "stop": a string or an array of strings.
std::vector<std::string> opt_string_list(const Json& obj, const char* key, const std::string& path);

std::string join_path(const std::string& parent, const char* key);

// A field the server does not implement but accepts at the value that makes it a no-op
// (OpenAI's defaults: "n": 1, "presence_penalty": 0, ...); null is always accepted.
struct NoOpField {
  const char* key;
  std::vector<Json> accepted;  // the values that change nothing
};

// Refuses what the server would otherwise silently ignore: any key of `obj` that is neither
// implemented nor a no-op field at a no-op value is Error(kInvalidInput) naming it.
void reject_unsupported_fields(const Json& obj, const std::string& path,
                               const std::vector<std::string_view>& implemented,
                               const std::vector<NoOpField>& no_ops = {});

}  // namespace mmserve::http
