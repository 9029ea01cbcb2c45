// The privacy policy file (privacy/policy.h) and the privacy stage that applies it
// (stages/privacy/privacy_stage.h): rules in order, scopes, refusals, keywords, the audit log.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "privacy/detectors.h"
#include "privacy/policy.h"
#include "stages/privacy/privacy_stage.h"

using namespace mmserve;

namespace {

constexpr const char* kPolicy = R"(
keywords = ["青龙", "Falcon"]

[[rule]]
name = "cards-only-for-chat"
types = ["bank_card"]
action = "local"
models = ["chat"]

[[rule]]
name = "no-cards"
types = ["bank_card", "cn_resident_id"]
action = "refuse"

[[rule]]
name = "code-names"
types = ["keyword"]
action = "local"
tasks = ["text-gen"]
callers = ["api-key"]
)";

std::vector<privacy::Finding> found(privacy::FindingType type) {
  return {{.type = type, .begin = 0, .end = 1, .checksum_verified = false}};
}

TEST(PrivacyPolicy, TheFirstMatchingRuleInScopeDecides) {
  const auto policy = privacy::parse_policy_text(kPolicy, "privacy.toml");
  ASSERT_EQ(policy.rules.size(), 3u);
  EXPECT_EQ(policy.keywords, (std::vector<std::string>{"青龙", "Falcon"}));
  using T = privacy::FindingType;
  const privacy::Scope chat{.task = "text-gen", .model = "chat", .caller = "api-key"};
  const privacy::Scope other{.task = "text-gen", .model = "other", .caller = "admin"};
  auto d = policy.decide(found(T::kBankCard), chat);
  EXPECT_EQ(d.rule, "cards-only-for-chat");
  EXPECT_EQ(d.action, privacy::Action::kLocal);
  d = policy.decide(found(T::kBankCard), other);
  EXPECT_EQ(d.rule, "no-cards");
  EXPECT_EQ(d.action, privacy::Action::kRefuse);
  EXPECT_EQ(policy.decide(found(T::kCnResidentId), chat).rule, "no-cards");
  EXPECT_EQ(policy.decide(found(T::kKeyword), chat).rule, "code-names");
  EXPECT_EQ(policy.decide(found(T::kKeyword), other).rule, "default");  // caller out of scope
  EXPECT_EQ(policy.decide(found(T::kEmail), chat).rule, "default");
  EXPECT_EQ(policy.decide({}, chat).action, privacy::Action::kLocal);
}

TEST(PrivacyPolicy, MistakesAreRefusedNamingLineAndKey) {
  struct Case {
    const char* text;
    const char* field;
    const char* needle;
  };
  const Case cases[] = {
      {"default_route = \"cloud\"\n", "default_route", "unknown key 'default_route'"},
      {"keywords = \"x\"\n", "keywords", "list of strings"},
      {"[[rule]]\naction = \"refuse\"\n", "types", "needs 'types'"},
      {"[[rule]]\ntypes = [\"credit_card\"]\naction = \"refuse\"\n", "types",
       "unknown finding type 'credit_card'"},
      {"[[rule]]\ntypes = [\"email\"]\naction = \"cloud\"\n", "action", "no cloud route yet"},
      {"[[rule]]\ntypes = [\"email\"]\n", "action", "needs 'action'"},
      {"[[rule]]\ntypes = [\"email\"]\naction = \"local\"\ntasks = [\"chat\"]\n", "tasks",
       "unknown task 'chat'"},
      {"[[rule]]\ntypes = [\"email\"]\naction = \"local\"\nwhen = 1\n", "when", "privacy.toml:4"},
      {"keywords = [\n", "privacy-policy", "privacy.toml:"},
  };
  for (const auto& c : cases) {
    try {
      privacy::parse_policy_text(c.text, "privacy.toml");
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << c.text;
      EXPECT_EQ(e.field(), c.field) << c.text;
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(privacy::load_policy_file("/no/such/policy.toml"), Error);
}

struct TempFiles {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("mmserve-policy-" + std::to_string(::getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempFiles() { std::filesystem::create_directories(dir); }
  ~TempFiles() { std::filesystem::remove_all(dir); }
  std::string write(const char* name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

pipeline::Call text_call(std::string text) {
  pipeline::Call call;
  call.request_id = "req-7";
  call.caller.id = "api-key";
  call.text.prompt = std::move(text);
  return call;
}

TEST(PrivacyStage, RefusalsAndDecisionsAreAuditedWithoutValues) {
  TempFiles files;
  const auto audit_path = (files.dir / "audit.jsonl").string();
  const stages::PrivacyStage stage(
      {.policy_path = files.write("privacy.toml", kPolicy), .audit_path = audit_path});

  auto refused = text_call("卡号6222021234567890128");
  try {
    stage.on_request(refused);
    FAIL() << "a card outside the chat model was let through";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kForbidden);
    EXPECT_EQ(e.field(), "input");
    EXPECT_NE(std::string(e.what()).find("no-cards"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("6222"), std::string::npos);
  }

  auto kept = text_call("项目青龙 update");
  stage.on_request(kept);
  EXPECT_EQ(*kept.annotation("findings"), "keyword:1");
  EXPECT_EQ(*kept.annotation("rule"), "code-names");
  EXPECT_EQ(kept.executor, "local");
  stage.on_finish(kept, {.model = "chat", .completion_tokens = 3});

  auto dry = text_call("卡号6222021234567890128");
  dry.dry_run = true;
  EXPECT_THROW(stage.on_request(dry), Error);  // the decision, but no audit line

  std::ifstream in(audit_path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    EXPECT_EQ(line.find("6222"), std::string::npos);
    EXPECT_EQ(line.find("青龙"), std::string::npos);  // keywords are values too
    lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["outcome"], "refused");
  EXPECT_EQ(lines[0]["rule"], "no-cards");
  EXPECT_EQ(lines[0]["route"], "refused");
  EXPECT_EQ(lines[0]["findings"]["bank_card"], 1);
  EXPECT_EQ(lines[0]["request_id"], "req-7");
  EXPECT_EQ(lines[1]["outcome"], "ok");
  EXPECT_EQ(lines[1]["route"], "local");
  EXPECT_EQ(lines[1]["model"], "chat");
  EXPECT_EQ(lines[1]["caller"], "api-key");
}

TEST(PrivacyStage, ABadPolicyOrAuditPathFailsAtStartup) {
  TempFiles files;
  EXPECT_THROW(stages::PrivacyStage({.policy_path = files.write("bad.toml", "rule = 1\n")}), Error);
  EXPECT_THROW(stages::PrivacyStage({.audit_path = "/no/such/dir/audit.jsonl"}), Error);
}

}  // namespace
