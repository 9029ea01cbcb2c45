// The privacy stage's routing (stages/privacy/privacy_stage.h): where a call goes given its
// findings, its data class, its task and media, the policy's route and the local queue. Driven
// directly on typed calls, with the policy in a temporary file and the local queue's length
// set by the test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "pipeline/call.h"
#include "privacy/detectors.h"
#include "stages/privacy/privacy_stage.h"

using namespace mmserve;

namespace {

class PrivacyRouting : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mmserve-routing-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A stage with this policy text; `cloud`: a cloud executor is configured.
  std::unique_ptr<stages::PrivacyStage> stage(const std::string& policy, bool cloud = true) {
    const auto path = dir_ / "privacy.toml";
    std::ofstream(path) << policy;
    return std::make_unique<stages::PrivacyStage>(
        stages::PrivacyOptions{.policy_path = path.string(), .cloud = cloud},
        [this](const pipeline::Call&) { return waiting_.load(); });
  }

  static pipeline::Call text_call(const std::string& prompt) {
    pipeline::Call call;
    call.task = runtime::Task::kTextGen;
    call.text.prompt = prompt;
    return call;
  }

  // The route and its reason the stage chose.
  static std::pair<std::string, std::string> routed(const stages::PrivacyStage& s,
                                                    pipeline::Call call) {
    s.on_request(call);
    const auto* route = call.annotation("route");
    const auto* reason = call.annotation("route_reason");
    EXPECT_EQ(call.executor, route != nullptr ? *route : "");
    return {call.executor, reason != nullptr ? *reason : ""};
  }

  std::filesystem::path dir_;
  std::atomic<int> waiting_{0};
};

using Routed = std::pair<std::string, std::string>;

TEST_F(PrivacyRouting, CloudRouteTakesOnlyCleanTextCalls) {
  const auto s = stage("route = \"cloud\"\n");
  EXPECT_EQ(routed(*s, text_call("Summarise the meeting notes")), Routed("cloud", "route_cloud"));
  // Personal data, wherever it is in the call, keeps it here.
  EXPECT_EQ(routed(*s, text_call("call me at 13812345678")), Routed("local", "findings"));
  auto in_system = text_call("hello");
  in_system.text.system = "the customer writes from li.wei@example.com";
  EXPECT_EQ(routed(*s, in_system), Routed("local", "findings"));
  auto chat = text_call("");
  chat.text.style = pipeline::PromptStyle::kChat;
  chat.text.messages = {{"user", {{.value = "mail a@example.com please"}}}};
  EXPECT_EQ(routed(*s, chat), Routed("local", "findings"));
  // The client's hint: personal and confidential stay; public and internal are judged by content.
  for (const auto dc : {pipeline::DataClass::kPersonal, pipeline::DataClass::kConfidential}) {
    auto c = text_call("nothing personal here");
    c.data_class = dc;
    EXPECT_EQ(routed(*s, c), Routed("local", "data_class"));
  }
  auto pub = text_call("call me at 13812345678");
  pub.data_class = pipeline::DataClass::kPublic;  // a client cannot talk findings out of here
  EXPECT_EQ(routed(*s, pub), Routed("local", "findings"));
  // Images cannot be scanned here; other tasks are served here.
  auto image = text_call("what is this?");
  image.text.style = pipeline::PromptStyle::kChat;
  image.text.messages = {{"user", {{.value = "what is this?"}, {.is_image = true, .value = "x"}}}};
  EXPECT_EQ(routed(*s, image), Routed("local", "unscanned_media"));
  auto speech = text_call("");
  speech.task = runtime::Task::kSpeechTranscribe;
  speech.audio = pipeline::AudioInput{.data = "RIFF"};
  EXPECT_EQ(routed(*s, speech), Routed("local", "task"));
}

TEST_F(PrivacyRouting, AutoOverflowsOnlyWhenTheLocalQueueIsLongEnough) {
  const auto s = stage("route = \"auto\"\n[overflow]\nqueued = 2\n");
  waiting_ = 1;
  EXPECT_EQ(routed(*s, text_call("a short story")), Routed("local", "not_saturated"));
  waiting_ = 2;
  EXPECT_EQ(routed(*s, text_call("a short story")), Routed("cloud", "overflow"));
  EXPECT_EQ(routed(*s, text_call("身份证110101199003071233")), Routed("local", "findings"));
}

TEST_F(PrivacyRouting, WithoutACloudOrWithRouteLocalEverythingStaysHere) {
  EXPECT_EQ(routed(*stage("route = \"cloud\"\n", false), text_call("hi")),
            Routed("local", "no_cloud"));
  EXPECT_EQ(routed(*stage(""), text_call("hi")), Routed("local", "route_local"));
}

TEST_F(PrivacyRouting, RouteRulesScopeByCallerAndRefusalsStillApply) {
  const auto s = stage(R"(
[[rule]]
name = "no-ids"
types = ["cn_resident_id"]
action = "refuse"

[[rule]]
name = "admin-cloud"
callers = ["admin"]
action = "cloud"
)");
  auto admin = text_call("draft a press release");
  admin.caller.id = "admin";
  EXPECT_EQ(routed(*s, admin), Routed("cloud", "route_cloud"));
  auto user = text_call("draft a press release");
  user.caller.id = "api-key";
  EXPECT_EQ(routed(*s, user), Routed("local", "route_local"));
  auto refused = text_call("身份证:110101199003071233");
  refused.caller.id = "admin";
  try {
    s->on_request(refused);
    ADD_FAILURE() << "not refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kForbidden);
  }
  EXPECT_EQ(*refused.annotation("route"), "refused");
  EXPECT_EQ(*refused.annotation("route_reason"), "rule");
}

// Fail closed: a scan that runs out of its budget keeps the call here, with the reason.
TEST_F(PrivacyRouting, AScanOutOfTimeKeepsTheCallLocal) {
  const auto s = stage("route = \"cloud\"\nscan_timeout_ms = 1\n");
  std::string huge;
  for (int i = 0; i < 400000; ++i) huge += "order 12345 ";  // ~4.8 MB: far more than 1 ms
  auto call = text_call(huge);
  EXPECT_EQ(routed(*s, call), Routed("local", "scan_error"));
  s->on_request(call);
  ASSERT_NE(call.annotation("scan_error"), nullptr);
  EXPECT_NE(call.annotation("scan_error")->find("ran out of time"), std::string::npos);
}

TEST(PrivacyScan, APassedDeadlineIsATimeout) {
  try {
    (void)privacy::scan("13812345678", {},
                        std::chrono::steady_clock::now() - std::chrono::seconds(1));
    ADD_FAILURE() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  }
  EXPECT_EQ(
      privacy::scan("13812345678", {}, std::chrono::steady_clock::now() + std::chrono::hours(1))
          .size(),
      1u);
}

TEST(DataClass, TheStricterHintWins) {
  using D = pipeline::DataClass;
  EXPECT_EQ(pipeline::stricter_data_class(D::kPublic, D::kConfidential), D::kConfidential);
  EXPECT_EQ(pipeline::stricter_data_class(D::kPersonal, D::kUnspecified), D::kPersonal);
  EXPECT_EQ(pipeline::parse_data_class("Confidential", "X-Data-Class"), D::kConfidential);
  EXPECT_THROW(pipeline::parse_data_class("secret", "X-Data-Class"), Error);
}

}  // namespace
