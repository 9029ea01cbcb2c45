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

// Route rules (no types) choose the route of calls without findings; a call with findings never
// takes one, whatever its order in the file.
TEST(PrivacyPolicy, RouteRulesNeverApplyToCallsWithFindings) {
  const auto policy = privacy::parse_policy_text(R"(
route = "auto"
[overflow]
queued = 3

[[rule]]
name = "admin-to-cloud"
callers = ["admin"]
action = "cloud"

[[rule]]
name = "speech-here"
tasks = ["speech-transcribe"]
action = "local"

[[rule]]
name = "no-ids"
types = ["cn_resident_id"]
action = "refuse"
)",
                                                 "privacy.toml");
  EXPECT_EQ(policy.route, privacy::Action::kAuto);
  EXPECT_EQ(policy.overflow_queued, 3);
  using T = privacy::FindingType;
  using A = privacy::Action;
  const privacy::Scope admin{.task = "text-gen", .model = "", .caller = "admin"};
  const privacy::Scope user{.task = "text-gen", .model = "", .caller = "api-key"};
  const privacy::Scope speech{.task = "speech-transcribe", .model = "", .caller = "api-key"};
  EXPECT_EQ(policy.decide({}, admin).action, A::kCloud);
  EXPECT_EQ(policy.decide({}, admin).rule, "admin-to-cloud");
  EXPECT_EQ(policy.decide({}, user).action, A::kAuto);
  EXPECT_EQ(policy.decide({}, user).rule, "default");
  EXPECT_EQ(policy.decide({}, speech).action, A::kLocal);
  // Findings: the findings rules decide, the route rules are skipped, else local.
  EXPECT_EQ(policy.decide(found(T::kCnResidentId), admin).action, A::kRefuse);
  EXPECT_EQ(policy.decide(found(T::kEmail), admin).action, A::kLocal);
  EXPECT_EQ(policy.decide(found(T::kEmail), admin).rule, "default");
  EXPECT_EQ(policy.decide(found(T::kEmail), user).action, A::kLocal);
  // Without `route`, everything stays local.
  EXPECT_EQ(privacy::parse_policy_text("", "p.toml").decide({}, user).action, A::kLocal);
  EXPECT_EQ(privacy::parse_policy_text("", "p.toml").overflow_queued, 1);
}

// The policy's regular expressions (RE2): found with byte spans in Chinese text, every match,
// as type "pattern"; a rule can name the type.
TEST(PrivacyPolicy, PatternsAreFindingsWithSpans) {
  const auto policy = privacy::parse_policy_text(R"(
patterns = ['HT-\d{6}', 'Falcon-[A-Z]{2}']
[[rule]]
types = ["pattern"]
action = "refuse"
)",
                                                 "privacy.toml");
  ASSERT_TRUE(policy.patterns);
  EXPECT_EQ(policy.patterns->size(), 2u);
  privacy::ScanOptions options;
  options.patterns = policy.patterns;
  const std::string text = "合同HT-123456与HT-654321，项目Falcon-QX，HT-12345不算";
  const auto findings = privacy::scan(text, options);
  std::vector<std::string> matched;
  for (const auto& f : findings) {
    EXPECT_EQ(f.type, privacy::FindingType::kPattern);
    matched.push_back(text.substr(f.begin, f.end - f.begin));
  }
  EXPECT_EQ(matched, (std::vector<std::string>{"HT-123456", "HT-654321", "Falcon-QX"}));
  EXPECT_EQ(policy.decide(findings, {.task = "text-gen"}).action, privacy::Action::kRefuse);
  // A pattern that would flag everything, or one RE2 refuses, fails the load naming the key.
  for (const char* bad : {"patterns = ['a*']\n", "patterns = ['(unclosed']\n"}) {
    try {
      privacy::parse_policy_text(bad, "privacy.toml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.field(), "patterns") << bad;
      EXPECT_NE(std::string(e.what()).find("privacy.toml:1"), std::string::npos) << e.what();
    }
  }
}

// Linear time: a pattern that makes backtracking engines explode on a hostile text.
TEST(PrivacyPolicy, PatternsCannotBacktrackCatastrophically) {
  const auto set = privacy::PatternSet::compile({"(a+)+b"}, "patterns");
  const std::string hostile(100000, 'a');
  std::vector<privacy::Finding> out;
  set->find(hostile, out);  // RE2: one pass; a backtracking engine would never return
  EXPECT_TRUE(out.empty());
  set->find(hostile + "b", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end - out[0].begin, hostile.size() + 1);
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
      {"[[rule]]\naction = \"refuse\"\n", "action", "refuses without 'types'"},
      {"[[rule]]\ntypes = []\naction = \"local\"\n", "types", "empty 'types'"},
      {"route = \"refuse\"\n", "route", "'route' must be"},
      {"route = 1\n", "route", "'route' must be"},
      {"[overflow]\nqueued = -1\n", "queued", "whole number"},
      {"[overflow]\nwaiting = 1\n", "waiting", "unknown key 'waiting' in [overflow]"},
      {"overflow = 3\n", "overflow", "must be a table"},
      {"scan_timeout_ms = 0\n", "scan_timeout_ms", "from 1 to 600000"},
      {"[[rule]]\ntypes = [\"credit_card\"]\naction = \"refuse\"\n", "types",
       "unknown finding type 'credit_card'"},
      {"[[rule]]\ntypes = [\"email\"]\naction = \"cloud\"\n", "action", "never goes to the cloud"},
      {"[[rule]]\ntypes = [\"email\"]\naction = \"auto\"\n", "action", "never goes to the cloud"},
      {"[[rule]]\ntypes = [\"email\"]\naction = \"send\"\n", "action",
       "not one of refuse, local, cloud, auto"},
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
