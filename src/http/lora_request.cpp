#include "http/lora_request.h"

#include <cmath>

#include "core/error.h"

namespace mmserve::http {
namespace {

[[noreturn]] void invalid(const std::string& message, const std::string& field) {
  throw Error(ErrorCode::kInvalidInput, message, field);
}

constexpr const char* kShapes =
    R"(a name, a list of names, or a list of {"name": ..., "scale": ...} or {"id": ..., "scale": ...})";

engine::LoraRef read_entry(const Json& entry, const std::string& field) {
  engine::LoraRef ref;
  ref.field = field;
  if (entry.is_string()) {
    ref.name = entry.get<std::string>();
    if (ref.name.empty()) invalid("field '" + field + "' is an empty adapter name", field);
    return ref;
  }
  if (!entry.is_object()) invalid("field '" + field + "' must be " + kShapes, field);
  reject_unsupported_fields(entry, field, {"name", "id", "scale"});
  const auto name = opt_string(entry, "name", field);
  const auto id = opt_integer(entry, "id", field);
  if (name.has_value() == id.has_value()) {
    invalid("field '" + field + "' needs one of 'name' or 'id'", field);
  }
  if (name) {
    if (name->empty()) invalid("field '" + field + ".name' is empty", field + ".name");
    ref.name = *name;
    ref.field = field + ".name";
  } else {
    if (*id < 0 || *id > 1'000'000) {
      invalid("field '" + field + ".id' must be an adapter's index (0, 1, ...)", field + ".id");
    }
    ref.index = static_cast<int32_t>(*id);
    ref.field = field + ".id";
  }
  if (const auto scale = opt_number(entry, "scale", field)) {
    const std::string scale_field = field + ".scale";
    if (!std::isfinite(*scale) || *scale < -16 || *scale > 16) {
      invalid("field '" + scale_field + "' must be a number within [-16, 16]", scale_field);
    }
    ref.scale = static_cast<float>(*scale);
  }
  return ref;
}

}  // namespace

void read_lora_param(const Json& obj, const std::string& path, std::vector<engine::LoraRef>& out) {
  const auto it = obj.find("lora");
  if (it == obj.end() || it->is_null()) return;
  const std::string field = join_path(path, "lora");
  if (it->is_string()) {
    out.push_back(read_entry(*it, field));
    return;
  }
  if (!it->is_array()) invalid("field '" + field + "' must be " + kShapes, field);
  if (it->size() > 16) invalid("field '" + field + "' names more than 16 adapters", field);
  for (size_t i = 0; i < it->size(); ++i) {
    auto ref = read_entry((*it)[i], field + "[" + std::to_string(i) + "]");
    if (ref.scale && *ref.scale == 0.0F) continue;  // off
    out.push_back(std::move(ref));
  }
}

}  // namespace mmserve::http
