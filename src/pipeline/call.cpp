#include "pipeline/call.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace mmserve::pipeline {

const char* data_class_name(DataClass data_class) {
  switch (data_class) {
    case DataClass::kUnspecified: return "unspecified";
    case DataClass::kPublic: return "public";
    case DataClass::kInternal: return "internal";
    case DataClass::kPersonal: return "personal";
    case DataClass::kConfidential: return "confidential";
  }
  return "unspecified";
}

DataClass parse_data_class(std::string_view text, const std::string& field) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.empty()) {
    return DataClass::kUnspecified;
  }
  for (const auto c :
       {DataClass::kPublic, DataClass::kInternal, DataClass::kPersonal, DataClass::kConfidential}) {
    if (lower == data_class_name(c)) {
      return c;
    }
  }
  throw Error(ErrorCode::kInvalidInput,
              field + " must be public, internal, personal or confidential, not '" +
                  std::string(text.substr(0, 64)) + "'",
              field);
}

DataClass stricter_data_class(DataClass a, DataClass b) {
  // The enumerators are in order of strictness.
  return static_cast<int>(a) >= static_cast<int>(b) ? a : b;
}

bool Cancellation::requested() const {
  return cancelled_.load() || (client_gone_ && client_gone_());
}

void Call::annotate(std::string_view stage, std::string_view key, std::string value) {
  annotations.push_back({std::string(stage), std::string(key), std::move(value)});
}

const std::string* Call::annotation(std::string_view key) const {
  // Newest first. (Not std::views::reverse: clang-14 cannot compile it with libstdc++ 12.)
  const auto it = std::find_if(annotations.rbegin(), annotations.rend(),
                               [key](const Annotation& a) { return a.key == key; });
  return it == annotations.rend() ? nullptr : &it->value;
}

}  // namespace mmserve::pipeline
