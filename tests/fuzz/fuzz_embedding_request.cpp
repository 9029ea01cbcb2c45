// Fuzzes the embedding request parsers (http/embedding_request.h): the body as the routes read
// it (parse_json_object), then parse_embeddings_request (POST /v1/embeddings) and
// parse_embed_inference_request (task "embed" of POST /v1/inference). A body that is not a JSON
// object is left out of the corpus.
//
// Invariants: a refusal is Error(kInvalidInput) naming a non-empty field; an accepted request
// has 1..kMaxEmbeddingInputs inputs, all texts or all token arrays, none empty, token ids in
// [0, INT32_MAX], a single unlisted input unless it came as an array, dimensions > 0 when set,
// the field names the route's path ("dimensions" or "parameters.dimensions"), a model name of
// at most 256 bytes; base64 exactly when the body asks for it; /v1/embeddings never sets a data
// class. Plus ASan and UBSan.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "http/embedding_request.h"

using namespace mmserve;

namespace {

void check_accepted(const http::EmbeddingRequest& r, const http::Json& options,
                    const char* dims_field) {
  const auto& in = r.input;
  const size_t n = in.texts.size() + in.tokens.size();
  FUZZ_CHECK(n >= 1 && n <= http::kMaxEmbeddingInputs);
  FUZZ_CHECK(in.texts.empty() || in.tokens.empty());
  for (const auto& t : in.texts) FUZZ_CHECK(!t.empty());
  for (const auto& ids : in.tokens) {
    FUZZ_CHECK(!ids.empty());
    for (const int32_t id : ids) FUZZ_CHECK(id >= 0);
  }
  FUZZ_CHECK(in.listed || n == 1);
  FUZZ_CHECK(in.field == "input");
  FUZZ_CHECK(!in.dimensions || *in.dimensions > 0);
  FUZZ_CHECK(in.dimensions_field == dims_field);
  FUZZ_CHECK(r.model.size() <= 256);
  const auto format = options.find("encoding_format");
  FUZZ_CHECK(r.base64 == (format != options.end() && format->is_string() && *format == "base64"));
  const auto dims = options.find("dimensions");
  FUZZ_CHECK(in.dimensions.has_value() == (dims != options.end() && !dims->is_null()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::Json body;
  try {
    body = http::parse_json_object(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kInvalidInput});
    return -1;  // not a JSON object: nothing for these parsers
  }
  try {
    const auto r = http::parse_embeddings_request(body);
    check_accepted(r, body, "dimensions");
    FUZZ_CHECK(r.data_class == pipeline::DataClass::kUnspecified);
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kInvalidInput});
    FUZZ_CHECK(!e.field().empty() && *e.what() != '\0');
  }
  try {
    const auto r = http::parse_embed_inference_request(body);
    const auto params = body.find("parameters");
    static const http::Json kEmpty = http::Json::object();
    check_accepted(r, params != body.end() && params->is_object() ? *params : kEmpty,
                   "parameters.dimensions");
    const auto stream = body.find("stream");
    FUZZ_CHECK(stream == body.end() || stream->is_null() || *stream == false);
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::kInvalidInput});
    FUZZ_CHECK(!e.field().empty() && *e.what() != '\0');
  }
  return 0;
}
