// The fine-tuning data reader (engine/finetune_data.h): each format, OpenAI's per-turn weights,
// detection, and malformed lines refused with their line number.
#include "engine/finetune_data.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "core/error.h"

namespace mmserve::engine {
namespace {

FinetuneData read(const std::string& text, FinetuneFormat format = FinetuneFormat::kAuto) {
  std::istringstream in(text);
  return read_finetune_data(in, format, "data.jsonl");
}

// The message of the Error reading `text` throws (and that it names the data field).
std::string error_of(const std::string& text, FinetuneFormat format = FinetuneFormat::kAuto) {
  try {
    read(text, format);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "data");
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << text;
  return {};
}

TEST(FinetuneData, ReadsOpenAIChatLines) {
  const auto data = read(
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})"
      "\n\n"
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}, {"role": "assistant", "content": "C", "weight": 1}]})"
      "\n");
  EXPECT_EQ(data.format, FinetuneFormat::kOpenAI);
  ASSERT_EQ(data.examples.size(), 2U);
  ASSERT_EQ(data.examples[0].messages.size(), 3U);
  EXPECT_EQ(data.examples[0].messages[0].role, "system");
  EXPECT_EQ(data.examples[0].messages[2].content, "Hello.");
  EXPECT_EQ(data.examples[0].line, 1U);
  EXPECT_EQ(data.examples[1].line, 3U);  // the blank line counts
  EXPECT_EQ(data.examples[1].messages[0].content, "AB");
  EXPECT_EQ(plain_training_text(data.examples[0]), "Be brief.\nHi\nHello.");
}

TEST(FinetuneData, DropsAssistantTurnsOfWeightZero) {
  const auto data = read(
      R"({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "bad", "weight": 0}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "good", "weight": 1}, {"role": "user", "content": "q3"}, {"role": "assistant", "content": "bad too", "weight": 0}]})"
      "\n"
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "down-voted", "weight": 0}]})"
      "\n");
  ASSERT_EQ(data.examples.size(), 1U);
  EXPECT_EQ(plain_training_text(data.examples[0]), "q1\nq2\ngood");
  EXPECT_EQ(data.skipped_examples, 1U);  // nothing trained in the second conversation
  // bad, then q3 and "bad too" after the last trained turn, then the second line's answer
  // and its question.
  EXPECT_EQ(data.dropped_turns, 5U);
}

TEST(FinetuneData, EveryTurnWeightZeroIsAnError) {
  const std::string why = error_of(
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]})");
  EXPECT_NE(why.find("weight 0"), std::string::npos) << why;
}

TEST(FinetuneData, ReadsShareGPT) {
  const auto data = read(
      R"({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]})");
  EXPECT_EQ(data.format, FinetuneFormat::kShareGPT);
  ASSERT_EQ(data.examples.size(), 1U);
  ASSERT_EQ(data.examples[0].messages.size(), 3U);
  EXPECT_EQ(data.examples[0].messages[1].role, "user");
  EXPECT_EQ(data.examples[0].messages[2].role, "assistant");
  EXPECT_EQ(data.examples[0].messages[2].content, "A");
}

TEST(FinetuneData, ReadsAlpaca) {
  const auto data = read(R"({"instruction": "Translate", "input": "chat", "output": "cat"})"
                         "\n"
                         R"({"instruction": "Say hi", "output": "hi", "system": "You are kind."})");
  EXPECT_EQ(data.format, FinetuneFormat::kAlpaca);
  ASSERT_EQ(data.examples.size(), 2U);
  ASSERT_EQ(data.examples[0].messages.size(), 2U);
  EXPECT_EQ(data.examples[0].messages[0].content, "Translate\n\nchat");
  EXPECT_EQ(data.examples[0].messages[1].content, "cat");
  ASSERT_EQ(data.examples[1].messages.size(), 3U);
  EXPECT_EQ(data.examples[1].messages[0].role, "system");
}

// Lines as `mmserve dataset export` writes them: earlier assistant turns of the prompt with
// weight 0, a top-level "tools", tool calls without content; ShareGPT function calls; Alpaca
// history.
TEST(FinetuneData, ReadsTheExportersExtras) {
  const auto openai = read(
      R"({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1", "weight": 0}, )"
      R"({"role": "user", "content": "q2"}, {"role": "assistant", "tool_calls": [{"id": "c"}], "weight": 1}], )"
      R"("tools": [{"type": "function"}]})");
  ASSERT_EQ(openai.examples.size(), 1U);
  EXPECT_EQ(plain_training_text(openai.examples[0]), "q1\nq2\n");
  EXPECT_EQ(openai.dropped_turns, 1U);

  const auto sharegpt = read(
      R"({"conversations": [{"from": "human", "value": "weather?"}, {"from": "function_call", "value": "{\"name\": \"w\"}"}, )"
      R"({"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]})");
  ASSERT_EQ(sharegpt.examples[0].messages.size(), 4U);
  EXPECT_EQ(sharegpt.examples[0].messages[1].role, "assistant");
  EXPECT_EQ(sharegpt.examples[0].messages[2].role, "tool");

  const auto alpaca = read(
      R"({"instruction": "and now?", "input": "", "output": "done", "history": [["first", "ok"], ["second", ""]]})");
  const auto& m = alpaca.examples[0].messages;
  ASSERT_EQ(m.size(), 5U);  // first, ok, second, and now?, done
  EXPECT_EQ(m[0].content, "first");
  EXPECT_EQ(m[1].role, "assistant");
  EXPECT_EQ(m[2].content, "second");
  EXPECT_EQ(m[3].content, "and now?");
  EXPECT_NE(error_of(R"({"instruction": "x", "output": "y", "history": [["only one"]]})")
                .find("line 1: history[0] must be a pair"),
            std::string::npos);
}

TEST(FinetuneData, ReadsPlainTextAndTextLines) {
  const auto plain = read("Once upon a time\nthere was a cat.\n");
  EXPECT_EQ(plain.format, FinetuneFormat::kText);
  ASSERT_EQ(plain.examples.size(), 1U);
  EXPECT_EQ(plain_training_text(plain.examples[0]), "Once upon a time\nthere was a cat.\n");

  const auto lines = read("{\"text\": \"one\"}\n{\"text\": \"two\"}\n");
  EXPECT_EQ(lines.format, FinetuneFormat::kText);
  ASSERT_EQ(lines.examples.size(), 2U);
  EXPECT_EQ(lines.examples[1].text, "two");

  // Told it is text, a file of JSON objects without "text" is one plain document.
  const auto told = read("{\"a\": 1}\n", FinetuneFormat::kText);
  ASSERT_EQ(told.examples.size(), 1U);
  EXPECT_EQ(told.examples[0].text, "{\"a\": 1}\n");
}

TEST(FinetuneData, MalformedLinesNameTheirLineNumber) {
  const std::string ok =
      R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})";
  EXPECT_NE(error_of(ok + "\n" + ok + "\n{not json\n").find("data.jsonl line 3: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of(ok + "\n[1, 2]\n").find("line 2: expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of(ok + "\n{\"messages\": []}\n").find("line 2: \"messages\" is empty"),
            std::string::npos);
  EXPECT_NE(error_of(ok + "\n" + R"({"messages": [{"role": "user", "content": "q"}]})")
                .find("line 2: no assistant message"),
            std::string::npos);
  EXPECT_NE(error_of(ok + "\n" + R"({"messages": [{"role": "wizard", "content": "q"}]})")
                .find("line 2: messages[0].role \"wizard\""),
            std::string::npos);
  EXPECT_NE(
      error_of(
          R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]})")
          .find("line 1: messages[1].weight must be 0 or 1"),
      std::string::npos);
  EXPECT_NE(
      error_of(
          R"({"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]})")
          .find("only allowed on assistant turns"),
      std::string::npos);
  EXPECT_NE(
      error_of(
          R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": "assistant", "content": "a"}]})")
          .find("line 1: messages[0].content"),
      std::string::npos);
  EXPECT_NE(error_of("{\"instruction\": \"x\"}\n").find("line 1: missing \"output\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"conversations": [{"from": "alien", "value": "x"}]})")
                .find("line 1: conversations[0].from \"alien\""),
            std::string::npos);
  EXPECT_NE(error_of("{\"other\": 1}\n").find("line 1: cannot tell the format"), std::string::npos);
  // A later line in another format than the first: named.
  EXPECT_NE(error_of(ok + "\n{\"instruction\": \"x\", \"output\": \"y\"}\n")
                .find("line 2: missing \"messages\""),
            std::string::npos);
  // An explicit JSON format on a plain text file.
  EXPECT_NE(error_of("\nhello\n", FinetuneFormat::kOpenAI).find("line 2: expected a JSON object"),
            std::string::npos);
}

TEST(FinetuneData, EmptyInputIsAnError) {
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("\n  \n").find("empty"), std::string::npos);
  EXPECT_NE(error_of("{\"text\": \"\"}\n").find("no example"), std::string::npos);
}

TEST(FinetuneData, FormatNames) {
  EXPECT_EQ(parse_finetune_format("openai"), FinetuneFormat::kOpenAI);
  EXPECT_EQ(parse_finetune_format("sharegpt"), FinetuneFormat::kShareGPT);
  EXPECT_EQ(parse_finetune_format("alpaca"), FinetuneFormat::kAlpaca);
  EXPECT_EQ(parse_finetune_format("text"), FinetuneFormat::kText);
  EXPECT_EQ(parse_finetune_format("auto"), FinetuneFormat::kAuto);
  try {
    parse_finetune_format("csv");
    FAIL() << "csv accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "format");
  }
}

TEST(FinetuneData, MissingFileIsNotFound) {
  try {
    read_finetune_file("/nonexistent/data.jsonl", FinetuneFormat::kAuto);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(e.field(), "data");
  }
}

}  // namespace
}  // namespace mmserve::engine
