#include "http/json_fields.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "core/error.h"

namespace mmserve::http {
namespace {

[[noreturn]] void wrong_type(const std::string& path, const char* want, const Json& got) {
  throw Error(ErrorCode::kInvalidInput,
              "field '" + path + "' must be " + want + ", got " + got.type_name(), path);
}

const Json* find(const Json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

std::string join_path(const std::string& parent, const char* key) {
  return parent.empty() ? std::string(key) : parent + "." + key;
}

void reject_unsupported_fields(const Json& obj, const std::string& path,
                               const std::vector<std::string_view>& implemented,
                               const std::vector<NoOpField>& no_ops) {
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    const Json& value = item.value();
    if (std::ranges::find(implemented, key) != implemented.end()) continue;
    // An empty key is named as its JSON spelling, so the error still names a field.
    const std::string field = join_path(path, key.empty() ? "\"\"" : key.c_str());
    const auto no_op =
        std::ranges::find_if(no_ops, [&](const NoOpField& f) { return key == f.key; });
    if (no_op == no_ops.end()) {
      throw Error(ErrorCode::kInvalidInput,
                  "unknown or unsupported field '" + field + "'; this server does not implement it",
                  field);
    }
    if (value.is_null() || std::ranges::find(no_op->accepted, value) != no_op->accepted.end()) {
      continue;
    }
    std::string values;
    for (const auto& v : no_op->accepted) {
      values +=
          (values.empty() ? "" : ", ") + v.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    throw Error(ErrorCode::kInvalidInput,
                "field '" + field + "' is not supported by this server except as " + values +
                    " (its no-op value)",
                field);
  }
}

namespace {

// Where `text` first nests arrays and objects deeper than kMaxJsonDepth, as the field path of
// the object keys leading there ("parameters.stop"; "body" when the body itself is that deep),
// or nullopt when it never does. Copying or comparing a JSON value recurses once per level, so
// a body of a million '[' must never be parsed. Strings are skipped; the body is not validated
// here (the parser does that).
std::optional<std::string> too_deep_at(std::string_view text) {
  struct Level {
    char kind;        // '{' or '['
    std::string key;  // the last key seen in this object
  };
  std::vector<Level> levels;
  std::string current, last_string;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\' && i + 1 < text.size()) {
        current += text[++i];
      } else if (c == '"') {
        in_string = false;
        last_string.swap(current);
      } else {
        current += c;
      }
    } else if (c == '"') {
      in_string = true;
      current.clear();
    } else if (c == ':' && !levels.empty() && levels.back().kind == '{') {
      levels.back().key = last_string;
    } else if (c == '[' || c == '{') {
      levels.push_back({c, {}});
      if (levels.size() > kMaxJsonDepth) {
        std::string path;
        for (const auto& level : levels) {
          if (level.kind != '{' || level.key.empty()) break;
          path = join_path(path, level.key.c_str());
        }
        return path.empty() ? "body" : path;
      }
    } else if ((c == ']' || c == '}') && !levels.empty()) {
      levels.pop_back();
    }
  }
  return std::nullopt;
}

}  // namespace

Json parse_json_object(const std::string& body) {
  if (const auto field = too_deep_at(body)) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + *field + "' nests arrays and objects deeper than " +
                    std::to_string(kMaxJsonDepth) + " levels (the most a request may)",
                *field);
  }
  Json j;
  try {
    j = Json::parse(body);
  } catch (const Json::parse_error& e) {
    throw Error(ErrorCode::kInvalidInput,
                "malformed JSON body at byte " + std::to_string(e.byte) + ": " +
                    (body.empty() ? std::string("the body is empty") : std::string(e.what())),
                "body");
  } catch (const Json::exception& e) {  // a number out of range (1e400), ...
    throw Error(ErrorCode::kInvalidInput, std::string("unusable JSON body: ") + e.what(), "body");
  }
  if (!j.is_object()) {
    throw Error(ErrorCode::kInvalidInput,
                std::string("the body must be a JSON object, got ") + j.type_name(), "body");
  }
  return j;
}

std::optional<std::string> opt_string(const Json& obj, const char* key, const std::string& path) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) wrong_type(join_path(path, key), "a string", *v);
  return v->get<std::string>();
}

std::optional<double> opt_number(const Json& obj, const char* key, const std::string& path) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) wrong_type(join_path(path, key), "a number", *v);
  return v->get<double>();
}

std::optional<int64_t> opt_integer(const Json& obj, const char* key, const std::string& path) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15)
      return static_cast<int64_t>(d);
  }
  wrong_type(join_path(path, key), "an integer", *v);
}

std::optional<bool> opt_bool(const Json& obj, const char* key, const std::string& path) {
  const Json* v = find(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) wrong_type(join_path(path, key), "a boolean", *v);
  return v->get<bool>();
}

const Json* opt_object(const Json& obj, const char* key, const std::string& path) {
  const Json* v = find(obj, key);
  if (v != nullptr && !v->is_object()) wrong_type(join_path(path, key), "an object", *v);
  return v;
}

std::vector<std::string> opt_string_list(const Json& obj, const char* key,
                                         const std::string& path) {
  const Json* v = find(obj, key);
  if (v == nullptr) return {};
  if (v->is_string()) return {v->get<std::string>()};
  if (!v->is_array()) wrong_type(join_path(path, key), "a string or an array of strings", *v);
  std::vector<std::string> out;
  for (const auto& item : *v) {
    if (!item.is_string()) wrong_type(join_path(path, key), "an array of strings", item);
    out.push_back(item.get<std::string>());
  }
  if (out.size() > 16) {
    throw Error(ErrorCode::kInvalidInput,
                "field '" + join_path(path, key) + "' allows at most 16 entries",
                join_path(path, key));
  }
  return out;
}

}  // namespace mmserve::http
