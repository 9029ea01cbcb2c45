// The chat format layer over llama.cpp's common library: prompts with tools and schemas, the
// answer parser (whole and streamed), the generic JSON fallback for templates without tools,
// and the grammar constraint that makes a schema's answers parse.
#include "engine/chat_format.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/text_batch.h"
#include "engine/text_model.h"
#include "synth/llm_synth.h"

namespace fs = std::filesystem;
using namespace mmserve;
using nlohmann::json;

namespace {

// A Hermes-style template (Qwen's tool format, written here so the test needs no tree).
constexpr const char* kHermesTemplate =
    "{%- if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}"
    "</tools><|im_end|>\n{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n"
    "{%- for c in m.tool_calls %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}";

class ChatFormat : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("mmserve-chat-format-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    synth::LlmSynthOptions o;
    o.shape = synth::llm_preset("tiny");
    o.shape.n_layer = 1;
    o.shape.n_vocab = 1024;
    o.shape.tied_embeddings = false;
    plain_ = engine::TextModel::load(write(o, "plain.gguf"));
    o.chat_template = kHermesTemplate;
    o.special_tokens = {"<|im_start|>", "<|im_end|>",      "<tool_call>",
                        "</tool_call>", "<tool_response>", "</tool_response>"};
    hermes_ = engine::TextModel::load(write(o, "hermes.gguf"));
  }
  static void TearDownTestSuite() {
    plain_.reset();
    hermes_.reset();
    fs::remove_all(dir_);
  }
  static std::string write(const synth::LlmSynthOptions& o, const std::string& name) {
    const auto p = (dir_ / name).string();
    synth::write_synthetic_llm(p, o);
    return p;
  }

  static engine::ToolSpec weather() {
    return {.name = "get_weather",
            .description = "the weather in a city",
            .parameters =
                R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})"};
  }
  static engine::ChatFormatRequest ask(std::vector<engine::ToolSpec> tools = {}) {
    engine::ChatFormatRequest r;
    r.messages = {{.role = "user", .content = "What is the weather in Paris?"}};
    r.tools = std::move(tools);
    return r;
  }

  static inline fs::path dir_;
  static inline std::shared_ptr<engine::TextModel> plain_, hermes_;
};

TEST_F(ChatFormat, TheTemplateRendersTheToolsAndTheParserReadsItsCalls) {
  auto prompt = hermes_->chat_templates().apply(ask({weather()}));
  EXPECT_NE(prompt.text.find("get_weather"), std::string::npos) << prompt.text;
  EXPECT_FALSE(prompt.grammar.empty());
  ASSERT_TRUE(prompt.parser);
  EXPECT_TRUE(prompt.parser->parses_tools());
  const auto m = prompt.parser->parse(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(m.tool_calls[0].arguments), json({{"city", "Paris"}}));
  EXPECT_FALSE(m.tool_calls[0].id.empty());
  EXPECT_EQ(m.content, "");
}

TEST_F(ChatFormat, StreamedIncrementsReassembleIntoTheWholeAnswer) {
  auto prompt = hermes_->chat_templates().apply(ask({weather()}));
  const std::string text =
      "Let me look.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
      "\n</tool_call>";
  engine::ChatStreamParser stream(prompt.parser);
  std::string content, name, arguments;
  auto take = [&](const std::vector<engine::ChatDelta>& ds) {
    for (const auto& d : ds) {
      content += d.content;
      if (d.tool_index) {
        EXPECT_EQ(*d.tool_index, 0u);
        name += d.tool_call.name;
        arguments += d.tool_call.arguments;
      }
    }
  };
  for (size_t i = 0; i < text.size(); i += 3) take(stream.push(text.substr(i, 3)));
  take(stream.finish());
  const auto whole = prompt.parser->parse(text);
  EXPECT_EQ(content, whole.content);
  ASSERT_EQ(whole.tool_calls.size(), 1u);
  EXPECT_EQ(name, whole.tool_calls[0].name);
  EXPECT_EQ(json::parse(arguments), json::parse(whole.tool_calls[0].arguments));
}

TEST_F(ChatFormat, ATemplateWithoutToolsGetsTheGenericJsonFormat) {
  EXPECT_FALSE(plain_->chat_templates().supports_tools());
  auto r = ask({weather()});
  r.tool_choice = engine::ToolChoice::kRequired;
  auto prompt = plain_->chat_templates().apply(r);
  EXPECT_NE(prompt.text.find("get_weather"), std::string::npos);
  EXPECT_FALSE(prompt.grammar.empty());
  EXPECT_FALSE(prompt.grammar.lazy);
  const auto calls = prompt.parser->parse(
      R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})");
  ASSERT_EQ(calls.tool_calls.size(), 1u);
  EXPECT_EQ(json::parse(calls.tool_calls[0].arguments), json({{"city", "Oslo"}}));
  r.tool_choice = engine::ToolChoice::kAuto;
  const auto words = plain_->chat_templates().apply(r).parser->parse(R"({"response": "Sunny."})");
  EXPECT_TRUE(words.tool_calls.empty());
  EXPECT_EQ(words.content, "Sunny.");
}

TEST_F(ChatFormat, AFencedSchemaAnswerIsTheJsonAlone) {
  auto r = ask();
  r.json_schema = R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})";
  for (const auto* model : {plain_.get(), hermes_.get()}) {
    auto prompt = model->chat_templates().apply(r);
    EXPECT_FALSE(prompt.grammar.empty());
    for (const std::string text :
         {"{\"a\": 1}", "```json{\"a\": 1} ```", "```json\n{\"a\": 1}\n```"}) {
      EXPECT_EQ(json::parse(prompt.parser->parse(text).content), json({{"a", 1}})) << text;
      engine::ChatStreamParser stream(prompt.parser);
      std::string streamed;
      for (char c : text) {
        for (const auto& d : stream.push(std::string(1, c))) streamed += d.content;
      }
      for (const auto& d : stream.finish()) streamed += d.content;
      EXPECT_EQ(json::parse(streamed), json({{"a", 1}})) << text;
    }
  }
}

TEST_F(ChatFormat, AFencedAnswerWithSpacesEverywhereParses) {
  auto r = ask();
  r.json_schema =
      R"({"type":"object","properties":{"active":{"type":"boolean"},)"
      R"("address":{"type":"object","properties":{"city":{"type":"string","maxLength":10},)"
      R"("zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city","zip"],)"
      R"("additionalProperties":false},"age":{"type":"integer"},"name":{"type":"string"},)"
      R"("role":{"enum":["admin","user","guest"]},"tags":{"type":"array"}},)"
      R"("required":["active","address","age","name","role","tags"],"additionalProperties":false})";
  const std::string text =
      "```json{\n\n \"active\" :false,\"address\" : {\n \"city\"\n:\n \"Y2? peoI0%\",\n\"zip\" "
      ":\"16422\"\n },\n\t  \"age\" :46,\"name\"\n: \"4 all "
      "outs7#\",\"role\":\n\n\"guest\",\"tags\"\n\t  "
      ":\n\t[]\n    } ```";
  auto prompt = plain_->chat_templates().apply(r);
  const auto m = prompt.parser->parse(text);
  EXPECT_EQ(json::parse(m.content)["age"], 46) << m.content;
}

TEST_F(ChatFormat, BadSchemasAreInvalidInputNamingTheField) {
  EXPECT_THROW(engine::json_schema_grammar("{\"$ref\": \"#/nowhere\"}", "response_format"), Error);
  try {
    engine::json_schema_grammar("not json", "parameters.json_schema");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "parameters.json_schema");
  }
}

TEST_F(ChatFormat, GrammarConstrainedGenerationParsesAsItsSchema) {
  const std::string schema =
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":99},)"
      R"("s":{"type":"string","maxLength":5}},"required":["n","s"],"additionalProperties":false})";
  engine::BatchOptions options;
  options.n_ctx = 2048;
  options.n_parallel = 1;
  engine::TextBatch batch(hermes_, options);
  for (uint32_t seed = 0; seed < 8; ++seed) {
    engine::GenerationRequest request;
    request.prompt = hermes_->tokenize("x", true, false);
    request.grammar.gbnf = engine::json_schema_grammar(schema, "schema");
    request.sampling.temperature = 1.0f;
    request.sampling.seed = seed;
    request.max_tokens = 400;
    batch.validate(request);
    engine::SequenceResult result;
    batch.start(request, {.on_text = nullptr, .on_finish = [&](const auto& r) { result = r; }});
    while (batch.has_work()) batch.step();
    ASSERT_EQ(result.reason, engine::FinishReason::kStop) << result.text;
    const auto value = json::parse(result.text);
    EXPECT_LE(value["n"].get<int>(), 99);
    // Characters, as the schema counts them (the text is well-formed UTF-8).
    const auto s = value["s"].get<std::string>();
    size_t chars = 0;
    for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
    EXPECT_LE(chars, 5u) << s;
  }
}

TEST_F(ChatFormat, AGrammarThatCannotCompileIsRefusedByValidate) {
  engine::BatchOptions options;
  options.n_ctx = 512;
  engine::TextBatch batch(hermes_, options);
  engine::GenerationRequest request;
  request.prompt = hermes_->tokenize("x", true, false);
  request.grammar.gbnf = "root ::= undefined-rule";
  request.max_tokens = 4;
  EXPECT_THROW(batch.validate(request), Error);
}

}  // namespace
