// The export formats: every line parses, each record is there with its contents, weights follow
// the ratings and corrections, tool calls keep OpenAI's shape, preference pairs come from
// corrections and from up versus down ratings of one conversation, and the report counts.
#include "stages/capture/capture_export.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

using mmserve::stages::ExportFormat;
using mmserve::store::CaptureEntry;
using Json = nlohmann::json;

namespace {

CaptureEntry entry(std::string id, std::string user, std::string answer,
                   std::optional<double> rating = std::nullopt,
                   std::optional<std::string> correction = std::nullopt) {
  CaptureEntry e;
  e.record.response_id = std::move(id);
  e.record.messages_json = Json::array({{{"role", "system"}, {"content", "be brief"}},
                                        {{"role", "user"}, {"content", user}}})
                               .dump();
  e.record.answer = std::move(answer);
  e.record.prompt_tokens = 10;
  e.record.completion_tokens = 4;
  e.record.redactions_json = R"({"cn_mobile":2})";
  if (rating || correction) {
    e.feedback = mmserve::store::FeedbackRecord{};
    e.feedback->rating = rating;
    e.feedback->correction = std::move(correction);
    e.feedback->redactions_json = R"({"email":1})";
  }
  return e;
}

std::vector<Json> lines(const std::vector<CaptureEntry>& entries, ExportFormat format,
                        mmserve::stages::ExportReport* report = nullptr) {
  std::ostringstream out;
  const auto r = mmserve::stages::export_dataset(entries, format, out);
  if (report != nullptr) *report = r;
  std::vector<Json> parsed;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) {
    parsed.push_back(Json::parse(line));  // throws on a line that is not JSON
  }
  EXPECT_EQ(static_cast<int64_t>(parsed.size()), r.lines);
  return parsed;
}

std::vector<CaptureEntry> sample() {
  return {entry("a", "q1 <PHONE_1>", "good"), entry("b", "q2", "bad", -1.0),
          entry("c", "q3", "meh", -1.0, "fixed"), entry("d", "q2", "great", 1.0)};
}

TEST(CaptureExport, OpenAiWeightsFollowRatingsAndCorrections) {
  mmserve::stages::ExportReport report;
  const auto out = lines(sample(), ExportFormat::kOpenAi, &report);
  ASSERT_EQ(out.size(), 4U);
  const auto last = [](const Json& line) { return line["messages"].back(); };
  EXPECT_EQ(out[0]["messages"][0], Json({{"role", "system"}, {"content", "be brief"}}));
  EXPECT_EQ(out[0]["messages"][1]["content"], "q1 <PHONE_1>");
  EXPECT_EQ(last(out[0]), Json({{"role", "assistant"}, {"content", "good"}, {"weight", 1}}));
  EXPECT_EQ(last(out[1])["weight"], 0);  // rated down
  EXPECT_EQ(last(out[1])["content"], "bad");
  EXPECT_EQ(last(out[2]), Json({{"role", "assistant"}, {"content", "fixed"}, {"weight", 1}}));
  EXPECT_EQ(last(out[3])["weight"], 1);
  EXPECT_EQ(report.records, 4);
  EXPECT_EQ(report.used, 4);
  EXPECT_EQ(report.prompt_tokens, 40);
  EXPECT_EQ(report.completion_tokens, 16);
  EXPECT_EQ(report.redactions.at("cn_mobile"), 8);
  EXPECT_EQ(report.redactions.at("email"), 3);  // the feedbacks' too
}

TEST(CaptureExport, OpenAiKeepsToolCallsAndToolsAndWeighsHistory) {
  CaptureEntry e = entry("t", "weather?", "");
  e.record.messages_json =
      R"([{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"weather?"}])";
  e.record.tool_calls_json =
      R"([{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}])";
  e.record.parameters_json = R"({"tools":[{"type":"function","function":{"name":"get_weather"}}]})";
  const auto out = lines({e}, ExportFormat::kOpenAi);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0]["messages"][1]["weight"], 0);
  const auto answer = out[0]["messages"].back();
  EXPECT_FALSE(answer.contains("content"));
  EXPECT_EQ(answer["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(answer["weight"], 1);
  EXPECT_EQ(out[0]["tools"][0]["function"]["name"], "get_weather");
}

TEST(CaptureExport, ShareGptAndAlpacaSkipDownRatedAnswers) {
  mmserve::stages::ExportReport report;
  const auto share = lines(sample(), ExportFormat::kShareGpt, &report);
  ASSERT_EQ(share.size(), 3U);
  EXPECT_EQ(share[0]["conversations"], Json::array({{{"from", "system"}, {"value", "be brief"}},
                                                    {{"from", "human"}, {"value", "q1 <PHONE_1>"}},
                                                    {{"from", "gpt"}, {"value", "good"}}}));
  EXPECT_EQ(share[1]["conversations"].back()["value"], "fixed");
  EXPECT_EQ(report.skipped.at("rated down"), 1);

  const auto alpaca = lines(sample(), ExportFormat::kAlpaca, &report);
  ASSERT_EQ(alpaca.size(), 3U);
  EXPECT_EQ(alpaca[0], Json({{"instruction", "q1 <PHONE_1>"},
                             {"input", ""},
                             {"output", "good"},
                             {"system", "be brief"}}));
  EXPECT_EQ(alpaca[2]["output"], "great");
}

TEST(CaptureExport, PreferencePairsFromCorrectionsAndRatings) {
  mmserve::stages::ExportReport report;
  const auto out = lines(sample(), ExportFormat::kPreference, &report);
  ASSERT_EQ(out.size(), 2U);
  // The correction over what it corrects.
  EXPECT_EQ(out[0]["input"]["messages"][1]["content"], "q3");
  EXPECT_EQ(out[0]["preferred_output"],
            Json::array({{{"role", "assistant"}, {"content", "fixed"}}}));
  EXPECT_EQ(out[0]["non_preferred_output"],
            Json::array({{{"role", "assistant"}, {"content", "meh"}}}));
  // Up over down, same conversation (q2).
  EXPECT_EQ(out[1]["input"]["messages"][1]["content"], "q2");
  EXPECT_EQ(out[1]["preferred_output"][0]["content"], "great");
  EXPECT_EQ(out[1]["non_preferred_output"][0]["content"], "bad");
  EXPECT_EQ(report.used, 3);
  EXPECT_EQ(report.skipped.at("no preference pair"), 1);  // a: unrated
  const std::string text = mmserve::stages::report_text(report);
  EXPECT_NE(text.find("exported 2 lines from 3 of 4 records"), std::string::npos) << text;
}

TEST(CaptureExport, UnknownFormatIsRefused) {
  EXPECT_THROW(mmserve::stages::parse_export_format("csv", "--format"), mmserve::Error);
}

}  // namespace
