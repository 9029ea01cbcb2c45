#include "http/embedding_request.h"

#include <limits>

#include "core/error.h"

namespace mmserve::http {
namespace {

[[noreturn]] void invalid(const std::string& message, const std::string& field) {
  throw Error(ErrorCode::kInvalidInput, message, field);
}

std::string at(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

// A token id: a non-negative integer that fits int32 (the model checks its vocabulary).
int32_t token_id(const Json& v, const std::string& field) {
  if (!v.is_number_integer()) {
    invalid("field '" + field + "' must be a token id (an integer)", field);
  }
  const auto id = v.get<int64_t>();
  if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
    invalid("field '" + field + "' is not a token id: " + std::to_string(id), field);
  }
  return static_cast<int32_t>(id);
}

std::vector<int32_t> token_array(const Json& arr, const std::string& field) {
  if (arr.empty()) invalid("field '" + field + "' is an empty token array", field);
  std::vector<int32_t> tokens;
  tokens.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) tokens.push_back(token_id(arr[i], at(field, i)));
  return tokens;
}

constexpr const char* kInputShapes =
    "a string, an array of strings, an array of token ids or an array of token arrays";

pipeline::EmbedInput read_input(const Json& body, const std::string& field) {
  pipeline::EmbedInput in;
  in.field = field;
  const auto it = body.find("input");
  if (it == body.end() || it->is_null()) {
    invalid("field '" + field + "' (what to embed) is required", field);
  }
  const Json& v = *it;
  if (v.is_string()) {
    if (v.get_ref<const std::string&>().empty()) {
      invalid("field '" + field + "' is an empty string: nothing to embed", field);
    }
    in.texts.push_back(v.get<std::string>());
    return in;
  }
  if (!v.is_array()) invalid("field '" + field + "' must be " + kInputShapes, field);
  if (v.empty()) invalid("field '" + field + "' is an empty array: nothing to embed", field);
  if (v.front().is_number()) {  // one input given as token ids
    in.tokens.push_back(token_array(v, field));
    return in;
  }
  if (v.size() > kMaxEmbeddingInputs) {
    invalid("field '" + field + "' has " + std::to_string(v.size()) + " inputs; at most " +
                std::to_string(kMaxEmbeddingInputs) + " per request",
            field);
  }
  in.listed = true;
  const bool strings = v.front().is_string();
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& item = v[i];
    const std::string f = at(field, i);
    if (strings && item.is_string()) {
      if (item.get_ref<const std::string&>().empty()) {
        invalid("field '" + f + "' is an empty string: nothing to embed", f);
      }
      in.texts.push_back(item.get<std::string>());
    } else if (!strings && item.is_array()) {
      in.tokens.push_back(token_array(item, f));
    } else {
      invalid("field '" + f + "' must be " + (strings ? "a string" : "a token array") +
                  " like the first input (" + kInputShapes + ")",
              f);
    }
  }
  return in;
}

void read_options(const Json& obj, const std::string& path, EmbeddingRequest& r) {
  const auto field = [&](const char* key) { return join_path(path, key); };
  if (const auto format = opt_string(obj, "encoding_format", path)) {
    if (*format != "float" && *format != "base64") {
      invalid("field '" + field("encoding_format") + "' must be \"float\" or \"base64\", not \"" +
                  *format + "\"",
              field("encoding_format"));
    }
    r.base64 = *format == "base64";
  }
  r.input.dimensions_field = field("dimensions");
  if (const auto dims = opt_integer(obj, "dimensions", path)) {
    if (*dims < 1 || *dims > std::numeric_limits<int32_t>::max()) {
      invalid("field '" + field("dimensions") + "' must be a positive integer",
              field("dimensions"));
    }
    r.input.dimensions = static_cast<int32_t>(*dims);
  }
}

std::string model_name(const Json& body) {
  auto name = opt_string(body, "model", "").value_or("");
  if (name.size() > 256) invalid("field 'model' is longer than 256 bytes", "model");
  return name;
}

}  // namespace

EmbeddingRequest parse_embeddings_request(const Json& body) {
  reject_unsupported_fields(body, "", {"input", "model", "encoding_format", "dimensions", "user"});
  EmbeddingRequest r;
  r.model = model_name(body);
  opt_string(body, "user", "");  // metadata: a string when given, else nothing
  r.input = read_input(body, "input");
  read_options(body, "", r);
  return r;
}

EmbeddingRequest parse_embed_inference_request(const Json& body) {
  reject_unsupported_fields(body, "", {"task", "input", "parameters", "stream", "model"});
  if (opt_bool(body, "stream", "").value_or(false)) {
    invalid("task 'embed' does not stream", "stream");
  }
  EmbeddingRequest r;
  r.model = model_name(body);
  r.input = read_input(body, "input");
  static const Json kNoParameters = Json::object();
  const Json* given = opt_object(body, "parameters", "");
  const Json& params = given != nullptr ? *given : kNoParameters;
  reject_unsupported_fields(params, "parameters", {"dimensions", "encoding_format", "data_class"});
  read_options(params, "parameters", r);
  if (const auto data_class = opt_string(params, "data_class", "parameters")) {
    r.data_class = pipeline::parse_data_class(*data_class, "parameters.data_class");
  }
  return r;
}

}  // namespace mmserve::http
