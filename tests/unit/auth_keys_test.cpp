// The authentication stage over the key database: each key's scopes (endpoints, tasks, models,
// admin, /metrics), refusals in the right category, and a revocation seen at the next call.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "stages/auth/api_key_stage.h"
#include "store/database.h"
#include "store/key_store.h"

namespace mmserve {
namespace {

using Op = pipeline::Operation;

class AuthKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Per test and process: ctest runs the tests of this fixture in parallel processes.
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("auth_keys_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = std::make_unique<store::Database>((dir_ / "mmserve.db").string());
    keys_ = std::make_unique<store::KeyStore>(*db_);
  }
  void TearDown() override {
    keys_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  stages::ApiKeyStage stage() const {
    return stages::ApiKeyStage(
        {.api_key = "", .admin_key = "", .database = keys_.get()}, [](const pipeline::Call& call) {
          return call.model == "gpt-4o-mini" ? std::string("stories") : call.model;
        });
  }
  static pipeline::Call call(const std::string& key, Op op, const std::string& endpoint) {
    pipeline::Call c;
    c.credentials.bearer = key;
    c.operation = op;
    c.endpoint = endpoint;
    return c;
  }
  static ErrorCode admit_error(const stages::ApiKeyStage& s, pipeline::Call c) {
    try {
      s.on_admit(c);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;  // admitted
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<store::KeyStore> keys_;
};

TEST_F(AuthKeysTest, ADatabaseKeyIsTheCallerWithItsScopesAndLimits) {
  const auto key = keys_->create("sales", {.tasks = {"text-gen"}, .models = {"stories"}},
                                 {.requests_per_minute = 7});
  const auto s = stage();
  auto c = call(key.key, Op::kInference, "/v1/chat/completions");
  s.on_admit(c);
  EXPECT_EQ(c.caller.id, key.record.id);
  EXPECT_EQ(c.caller.name, "sales");
  EXPECT_TRUE(c.caller.authenticated);
  EXPECT_FALSE(c.caller.admin);
  EXPECT_FALSE(c.caller.scopes.cloud);
  EXPECT_EQ(c.caller.limits.requests_per_minute, 7);
  c.model = "gpt-4o-mini";  // an alias of an allowed model
  EXPECT_NO_THROW(s.on_request(c));
  c.model = "other";
  try {
    s.on_request(c);
    ADD_FAILURE() << "another model allowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kForbidden);
    EXPECT_EQ(e.field(), "model");
  }
  c.model = "stories";
  c.task = runtime::Task::kSpeechTranscribe;
  try {
    s.on_request(c);
    ADD_FAILURE() << "another task allowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "task");
  }
}

TEST_F(AuthKeysTest, EndpointsAdminAndMetricsScopes) {
  const auto audio = keys_->create("audio", {.endpoints = {"/v1/audio/*"}}, {});
  const auto admin = keys_->create("ops", {.admin = true}, {});
  const auto scraper = keys_->create("prometheus", {.endpoints = {"/metrics"}}, {});
  const auto s = stage();
  EXPECT_EQ(admit_error(s, call(audio.key, Op::kInference, "/v1/audio/transcriptions")),
            ErrorCode::kInternal);
  EXPECT_EQ(admit_error(s, call(audio.key, Op::kInference, "/v1/chat/completions")),
            ErrorCode::kForbidden);
  EXPECT_EQ(admit_error(s, call(audio.key, Op::kManageModels, "/models/load")),
            ErrorCode::kForbidden);
  EXPECT_EQ(admit_error(s, call(admin.key, Op::kManageModels, "/models/load")),
            ErrorCode::kInternal);
  EXPECT_EQ(admit_error(s, call(audio.key, Op::kReadMetrics, "/metrics")), ErrorCode::kForbidden);
  EXPECT_EQ(admit_error(s, call(scraper.key, Op::kReadMetrics, "/metrics")), ErrorCode::kInternal);
  EXPECT_EQ(admit_error(s, call(admin.key, Op::kReadMetrics, "/metrics")), ErrorCode::kInternal);
}

TEST_F(AuthKeysTest, MissingWrongAndRevokedKeysAreUnauthorized) {
  const auto key = keys_->create("team", {}, {});
  const auto s = stage();
  EXPECT_EQ(admit_error(s, call("", Op::kInference, "/v1/completions")), ErrorCode::kUnauthorized);
  EXPECT_EQ(admit_error(s, call(key.key + "x", Op::kInference, "/v1/completions")),
            ErrorCode::kUnauthorized);
  EXPECT_EQ(admit_error(
                s, call("mms_zzzzzzzz_" + std::string(32, 'a'), Op::kInference, "/v1/completions")),
            ErrorCode::kUnauthorized);
  EXPECT_EQ(admit_error(s, call(key.key, Op::kInference, "/v1/completions")), ErrorCode::kInternal);
  // Revoked through another connection, as `mmserve keys revoke` does while the server runs.
  store::Database cli((dir_ / "mmserve.db").string());
  store::KeyStore(cli).revoke("team");
  EXPECT_EQ(admit_error(s, call(key.key, Op::kInference, "/v1/completions")),
            ErrorCode::kUnauthorized);
}

TEST_F(AuthKeysTest, StaticKeysStillWorkBesideTheDatabase) {
  const stages::ApiKeyStage s({.api_key = "static-key", .admin_key = "", .database = keys_.get()});
  auto c = call("static-key", Op::kInference, "/v1/completions");
  s.on_admit(c);
  EXPECT_EQ(c.caller.id, "api-key");
  EXPECT_TRUE(c.caller.scopes.cloud);  // as before keys had scopes
  EXPECT_EQ(admit_error(s, call("", Op::kInference, "/v1/completions")), ErrorCode::kUnauthorized);
}

}  // namespace
}  // namespace mmserve
