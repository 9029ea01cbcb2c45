// The capture store over a real SQLite file: write and read back every field, feedback joined
// (the latest wins, also when it came before its capture), the filters (model, key, rating,
// dates, limit), delete and prune, the size cap (kFull, never a throw), and the keys database's
// capture flag (schema version 2).
#include "store/capture_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "store/key_store.h"
#include "test_support.h"

namespace fs = std::filesystem;
using mmserve::store::AppendResult;
using mmserve::store::CaptureQuery;
using mmserve::store::CaptureRecord;
using mmserve::store::CaptureStore;
using mmserve::store::FeedbackRecord;
using mmserve::store::RatingFilter;

namespace {

class CaptureStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = scratch_.path();
    path_ = (dir_ / "capture.db").string();
  }

  mmserve::testing::ScratchDir scratch_{"mmserve-capture"};
  fs::path dir_;
  std::string path_;
};

CaptureRecord record(std::string id, int64_t time_ms, std::string model = "m",
                     std::string key = "mms_aaaaaaaa") {
  CaptureRecord r;
  r.response_id = std::move(id);
  r.request_id = "req-" + r.response_id;
  r.time_ms = time_ms;
  r.model = std::move(model);
  r.key_id = std::move(key);
  r.key_name = "team";
  r.endpoint = "/v1/chat/completions";
  r.task = "text-gen";
  r.route = "local";
  r.parameters_json = R"({"temperature":0})";
  r.messages_json = R"([{"role":"user","content":"hi <PHONE_1>"}])";
  r.answer = "hello";
  r.tool_calls_json = "";
  r.prompt_tokens = 7;
  r.completion_tokens = 3;
  r.duration_ms = 12.5;
  r.ttft_ms = 4.5;
  r.finish_reason = "stop";
  r.redactions_json = R"({"cn_mobile":1})";
  return r;
}

FeedbackRecord feedback(std::string id, std::optional<double> rating,
                        std::optional<std::string> correction = std::nullopt) {
  FeedbackRecord f;
  f.response_id = std::move(id);
  f.key_id = "mms_aaaaaaaa";
  f.time_ms = 5;
  f.rating = rating;
  f.correction = std::move(correction);
  return f;
}

TEST_F(CaptureStoreTest, WritesAndReadsBackEveryField) {
  CaptureStore s(path_);
  ASSERT_EQ(s.append(record("chatcmpl-1", 1000)), AppendResult::kWritten);
  const auto e = s.find("chatcmpl-1");
  ASSERT_TRUE(e.has_value());
  const auto& r = e->record;
  EXPECT_EQ(r.request_id, "req-chatcmpl-1");
  EXPECT_EQ(r.time_ms, 1000);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.key_id, "mms_aaaaaaaa");
  EXPECT_EQ(r.key_name, "team");
  EXPECT_EQ(r.endpoint, "/v1/chat/completions");
  EXPECT_EQ(r.task, "text-gen");
  EXPECT_EQ(r.route, "local");
  EXPECT_EQ(r.parameters_json, R"({"temperature":0})");
  EXPECT_EQ(r.messages_json, R"([{"role":"user","content":"hi <PHONE_1>"}])");
  EXPECT_EQ(r.answer, "hello");
  EXPECT_EQ(r.prompt_tokens, 7);
  EXPECT_EQ(r.completion_tokens, 3);
  EXPECT_DOUBLE_EQ(r.duration_ms, 12.5);
  EXPECT_DOUBLE_EQ(r.ttft_ms, 4.5);
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.redactions_json, R"({"cn_mobile":1})");
  EXPECT_FALSE(e->feedback.has_value());
  EXPECT_EQ(s.owner("chatcmpl-1"), std::optional<std::string>("mms_aaaaaaaa"));
  EXPECT_FALSE(s.owner("chatcmpl-2").has_value());
  EXPECT_FALSE(s.find("chatcmpl-2").has_value());
}

TEST_F(CaptureStoreTest, FeedbackJoinsItsCaptureAndTheLatestWins) {
  CaptureStore s(path_);
  s.add_feedback(feedback("a", 1.0));  // before its capture is written
  ASSERT_EQ(s.append(record("a", 1)), AppendResult::kWritten);
  EXPECT_EQ(s.find("a")->feedback->rating, std::optional<double>(1.0));
  s.add_feedback(feedback("a", -1.0, "better"));
  const auto e = s.find("a");
  EXPECT_EQ(e->feedback->rating, std::optional<double>(-1.0));
  EXPECT_EQ(e->feedback->correction, std::optional<std::string>("better"));
  EXPECT_FALSE(e->feedback->comment.has_value());
}

TEST_F(CaptureStoreTest, Filters) {
  CaptureStore s(path_);
  s.append(record("a", 100, "m1", "k1"));
  s.append(record("b", 200, "m2", "k1"));
  s.append(record("c", 300, "m1", "k2"));
  s.append(record("d", 400, "m1", "k2"));
  s.add_feedback(feedback("a", 1.0));
  s.add_feedback(feedback("b", -0.5));
  s.add_feedback(feedback("c", std::nullopt, "fixed"));
  const auto ids = [&s](CaptureQuery q) {
    std::string out;
    for (const auto& e : s.query(q)) out += e.record.response_id;
    return out;
  };
  EXPECT_EQ(ids({}), "abcd");
  EXPECT_EQ(ids({.model = "m1"}), "acd");
  EXPECT_EQ(ids({.key = "k2"}), "cd");
  EXPECT_EQ(ids({.key = "team"}), "abcd");  // by name
  EXPECT_EQ(ids({.rating = RatingFilter::kUp}), "a");
  EXPECT_EQ(ids({.rating = RatingFilter::kDown}), "b");
  EXPECT_EQ(ids({.rating = RatingFilter::kRated}), "ab");
  EXPECT_EQ(ids({.rating = RatingFilter::kNone}), "cd");
  EXPECT_EQ(ids({.since_ms = 200, .until_ms = 400}), "bc");
  EXPECT_EQ(ids({.limit = 2}), "cd");  // the newest, oldest first
  EXPECT_EQ(ids({.response_ids = {"d", "a", "zz"}}), "ad");
}

TEST_F(CaptureStoreTest, DeleteAndPrune) {
  CaptureStore s(path_);
  s.append(record("a", 100));
  s.append(record("b", 200));
  s.append(record("c", 300));
  s.add_feedback(feedback("a", 1.0));
  EXPECT_EQ(s.remove({"a", "nope"}), 1);
  EXPECT_FALSE(s.find("a").has_value());
  s.append(record("a", 400));  // the same id again: its old feedback went with it
  EXPECT_FALSE(s.find("a")->feedback.has_value());
  EXPECT_EQ(s.prune(250), 1);  // b
  EXPECT_EQ(s.query({}).size(), 2U);
}

TEST_F(CaptureStoreTest, OverItsCapNewRecordsAreRefusedNotThrown) {
  CaptureStore s(path_, 64 * 1024);
  CaptureRecord big = record("x", 1);
  big.answer.assign(8 * 1024, 'x');
  int written = 0;
  int full = 0;
  for (int i = 0; i < 40; ++i) {
    big.response_id = "x" + std::to_string(i);
    const auto result = s.append(big);
    (result == AppendResult::kWritten ? written : full)++;
  }
  EXPECT_GT(written, 0);
  EXPECT_GT(full, 0);
  EXPECT_LE(s.size_bytes(), 80 * 1024);
  // Reads still work.
  EXPECT_EQ(static_cast<int>(s.query({}).size()), written);
}

TEST_F(CaptureStoreTest, ADiskFullIsKFull) {
  // SQLite's max_page_count (what the cap sets) refuses the pages a record needs, as a full disk
  // does: SQLITE_FULL, read as kFull.
  CaptureStore capped(path_, 256 * 1024);
  CaptureRecord big = record("y", 1);
  big.answer.assign(600 * 1024, 'y');
  EXPECT_EQ(capped.append(big), AppendResult::kFull);
  EXPECT_EQ(capped.append(record("small", 2)), AppendResult::kWritten);
}

TEST(CaptureKeys, TheCaptureFlagRoundTrips) {
  std::string tmpl = (fs::path(::testing::TempDir()) / "mmserve-capkeys-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string path = (fs::path(tmpl) / "keys.db").string();
  {
    mmserve::store::Database db(path);
    mmserve::store::KeyStore keys(db);
    mmserve::AccessScopes scopes;
    scopes.capture = true;
    keys.create("capturing", scopes, {});
    keys.create("plain", {}, {});
    EXPECT_TRUE(keys.find("capturing")->scopes.capture);
    EXPECT_FALSE(keys.find("plain")->scopes.capture);
    scopes.capture = false;
    keys.update("capturing", scopes, {});
    EXPECT_FALSE(keys.find("capturing")->scopes.capture);
  }
  fs::remove_all(tmpl);
}

}  // namespace

namespace {

// A version-1 keys database (before the capture flag) is upgraded in place: its keys keep
// everything and are not captured.
TEST(CaptureKeys, AVersionOneDatabaseIsUpgraded) {
  std::string tmpl = (fs::path(::testing::TempDir()) / "mmserve-capv1-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string path = (fs::path(tmpl) / "keys.db").string();
  {
    mmserve::store::Database db(path);
    mmserve::store::KeyStore(db).create("old", {}, {});
    const auto lock = db.lock();
    db.exec("ALTER TABLE keys DROP COLUMN capture; PRAGMA user_version = 1;");
  }
  {
    mmserve::store::Database db(path);
    mmserve::store::KeyStore keys(db);
    ASSERT_TRUE(keys.find("old").has_value());
    EXPECT_FALSE(keys.find("old")->scopes.capture);
    const auto lock = db.lock();
    mmserve::store::Statement version(db, "PRAGMA user_version");
    ASSERT_TRUE(version.step());
    EXPECT_EQ(version.int64(0), 2);
  }
  fs::remove_all(tmpl);
}

}  // namespace
