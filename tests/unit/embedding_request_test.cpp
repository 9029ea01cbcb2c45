// The typed embedding requests (http/embedding_request.h): every input shape OpenAI accepts,
// and every malformed body refused with the field it names.
#include "http/embedding_request.h"

#include <gtest/gtest.h>

#include "core/error.h"

using namespace mmserve;
using http::Json;

namespace {

std::string refused_field(const Json& body, bool inference = false) {
  try {
    if (inference) {
      http::parse_embed_inference_request(body);
    } else {
      http::parse_embeddings_request(body);
    }
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << body.dump();
    return e.field();
  }
  ADD_FAILURE() << "accepted: " << body.dump();
  return {};
}

}  // namespace

TEST(EmbeddingRequest, TakesEveryInputShape) {
  auto r = http::parse_embeddings_request(Json::parse(R"({"input": "hi", "model": "m"})"));
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.input.texts, std::vector<std::string>{"hi"});
  EXPECT_FALSE(r.input.listed);
  EXPECT_FALSE(r.base64);
  EXPECT_FALSE(r.input.dimensions);

  r = http::parse_embeddings_request(Json::parse(R"({"input": ["a", "b"], "user": "u1"})"));
  EXPECT_EQ(r.input.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.input.listed);

  r = http::parse_embeddings_request(Json::parse(R"({"input": [2, 10, 3]})"));
  ASSERT_EQ(r.input.tokens.size(), 1u);  // one input of token ids
  EXPECT_EQ(r.input.tokens[0], (std::vector<int32_t>{2, 10, 3}));
  EXPECT_FALSE(r.input.listed);

  r = http::parse_embeddings_request(
      Json::parse(R"({"input": [[2, 3], [4]], "encoding_format": "base64", "dimensions": 8})"));
  EXPECT_EQ(r.input.tokens.size(), 2u);
  EXPECT_TRUE(r.input.listed);
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(r.input.dimensions, 8);
  EXPECT_EQ(r.input.dimensions_field, "dimensions");
}

TEST(EmbeddingRequest, RefusesMalformedBodiesNamingTheField) {
  EXPECT_EQ(refused_field(Json::parse("{}")), "input");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": null})")), "input");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": true})")), "input");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": ""})")), "input");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": []})")), "input");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": ["a", ""]})")), "input[1]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": ["a", ["b"]]})")), "input[1]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": [[1], "a"]})")), "input[1]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": [[1], []]})")), "input[1]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": [[1, "x"]]})")), "input[0][1]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": [1, 2.5]})")), "input[1]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": [4294967296]})")), "input[0]");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": [-3]})")), "input[0]");
  EXPECT_EQ(refused_field(Json{{"input", std::vector<std::string>(2049, "a")}}), "input");
  EXPECT_NO_THROW(
      http::parse_embeddings_request(Json{{"input", std::vector<std::string>(2048, "a")}}));
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "encoding_format": "hex"})")),
            "encoding_format");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "dimensions": 0})")), "dimensions");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "dimensions": -4})")), "dimensions");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "dimensions": 1.5})")), "dimensions");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "user": 3})")), "user");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "model": 3})")), "model");
  EXPECT_EQ(refused_field(Json{{"input", "a"}, {"model", std::string(300, 'm')}}), "model");
  EXPECT_EQ(refused_field(Json::parse(R"({"input": "a", "temperature": 0})")), "temperature");
}

TEST(EmbeddingRequest, InferenceTaskKeepsOptionsUnderParameters) {
  auto r = http::parse_embed_inference_request(Json::parse(
      R"({"task": "embed", "input": ["a"], "parameters": {"dimensions": 4,
          "encoding_format": "base64", "data_class": "personal"}})"));
  EXPECT_EQ(r.input.dimensions, 4);
  EXPECT_EQ(r.input.dimensions_field, "parameters.dimensions");
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(r.data_class, pipeline::DataClass::kPersonal);
  EXPECT_EQ(refused_field(Json::parse(R"({"task": "embed"})"), true), "input");
  EXPECT_EQ(refused_field(Json::parse(R"({"task": "embed", "input": "a", "stream": true})"), true),
            "stream");
  EXPECT_EQ(
      refused_field(Json::parse(R"({"task": "embed", "input": "a", "parameters": {"top_k": 3}})"),
                    true),
      "parameters.top_k");
  EXPECT_EQ(
      refused_field(
          Json::parse(R"({"task": "embed", "input": "a", "parameters": {"dimensions": 0}})"), true),
      "parameters.dimensions");
  EXPECT_EQ(
      refused_field(
          Json::parse(R"({"task": "embed", "input": "a", "parameters": {"data_class": "x"}})"),
          true),
      "parameters.data_class");
  EXPECT_EQ(refused_field(Json::parse(R"({"task": "embed", "input": "a", "extra": 1})"), true),
            "extra");
}
