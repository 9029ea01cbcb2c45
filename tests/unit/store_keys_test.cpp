// The key store over a real SQLite file: the lifecycle (create, verify, revoke, rotate, update,
// find, list), every refusal, what is stored (never the secret), two connections on one file (as
// `mmserve keys` and a running server), the schema checks, and verify racing a revoke.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "store/key_store.h"

namespace fs = std::filesystem;
using mmserve::AccessScopes;
using mmserve::Error;
using mmserve::ErrorCode;
using mmserve::RateLimits;
using mmserve::store::Database;
using mmserve::store::KeyRefusal;
using mmserve::store::KeyStore;

namespace {

class StoreKeys : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "mmserve-keys-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "mmserve.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static ErrorCode code_of(const std::function<void()>& f, std::string* field = nullptr) {
    try {
      f();
    } catch (const Error& e) {
      if (field != nullptr) {
        *field = e.field();
      }
      return e.code();
    }
    ADD_FAILURE() << "no error";
    return ErrorCode::kInternal;
  }

  // Every byte of the database file and its WAL.
  [[nodiscard]] std::string raw_bytes() const {
    std::string all;
    for (const auto* suffix : {"", "-wal"}) {
      std::ifstream in(path_ + suffix, std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }

  fs::path dir_;
  std::string path_;
};

AccessScopes text_only() {
  AccessScopes s;
  s.tasks = {"text-gen"};
  s.models = {"stories", "qwen"};
  s.endpoints = {"/v1/chat/completions", "/v1/audio/*"};
  s.cloud = true;
  return s;
}

RateLimits some_limits() {
  RateLimits l;
  l.requests_per_minute = 60;
  l.tokens_per_minute = 10'000;
  l.audio_seconds_per_day = 3600;
  l.concurrent_requests = 4;
  return l;
}

}  // namespace

TEST_F(StoreKeys, KeyShapeAndId) {
  Database db(path_);
  KeyStore keys(db);
  const auto k = keys.create("sales", text_only(), some_limits());
  ASSERT_EQ(k.key.size(), 45U);
  EXPECT_TRUE(k.key.starts_with("mms_"));
  EXPECT_EQ(k.key[12], '_');
  EXPECT_EQ(k.record.id, k.key.substr(0, 12));
  EXPECT_EQ(k.record.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789", 4),
            std::string::npos);
  EXPECT_EQ(
      k.key.find_first_not_of("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 13),
      std::string::npos);
  EXPECT_EQ(mmserve::store::key_id_of(k.key), k.record.id);
  EXPECT_EQ(mmserve::store::key_id_of(k.key.substr(0, 44)), "");
  EXPECT_EQ(mmserve::store::key_id_of(k.key + "x"), "");
  EXPECT_EQ(mmserve::store::key_id_of("mms_ABCDEFGH_" + k.key.substr(13)), "");  // id: lowercase
  EXPECT_EQ(mmserve::store::key_id_of("sk-" + k.key.substr(3)), "");
  EXPECT_EQ(mmserve::store::key_id_of(k.key.substr(0, 44) + "!"), "");
  EXPECT_EQ(mmserve::store::key_id_of(""), "");
}

TEST_F(StoreKeys, KeysAreDistinct) {
  Database db(path_);
  KeyStore keys(db);
  std::set<std::string> ids;
  std::set<std::string> secrets;
  for (int i = 0; i < 50; ++i) {
    const auto k = keys.create("k" + std::to_string(i), {}, {});
    ids.insert(k.record.id);
    secrets.insert(k.key.substr(13));
  }
  EXPECT_EQ(ids.size(), 50U);
  EXPECT_EQ(secrets.size(), 50U);
}

TEST_F(StoreKeys, CreateVerifyFindList) {
  Database db(path_);
  KeyStore keys(db);
  const int64_t before = mmserve::store::unix_ms_now();
  const auto k = keys.create("sales-team", text_only(), some_limits());
  EXPECT_GE(k.record.created_ms, before);
  EXPECT_EQ(k.record.rotated_ms, 0);
  EXPECT_TRUE(k.record.active());

  KeyRefusal why = KeyRefusal::kUnknown;
  const auto v = keys.verify(k.key, &why);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(why, KeyRefusal::kNone);
  EXPECT_EQ(v->id, k.record.id);
  EXPECT_EQ(v->name, "sales-team");
  EXPECT_EQ(v->scopes.tasks, text_only().tasks);
  EXPECT_EQ(v->scopes.models, text_only().models);
  EXPECT_EQ(v->scopes.endpoints, text_only().endpoints);
  EXPECT_TRUE(v->scopes.cloud);
  EXPECT_FALSE(v->scopes.admin);
  EXPECT_EQ(v->limits.requests_per_minute, 60);
  EXPECT_EQ(v->limits.tokens_per_minute, 10'000);
  EXPECT_EQ(v->limits.audio_seconds_per_day, 3600);
  EXPECT_EQ(v->limits.concurrent_requests, 4);
  EXPECT_EQ(v->created_ms, k.record.created_ms);
  EXPECT_TRUE(keys.verify(k.key).has_value());  // refusal pointer optional

  ASSERT_TRUE(keys.find("sales-team").has_value());
  EXPECT_EQ(keys.find("sales-team")->id, k.record.id);
  EXPECT_EQ(keys.find(k.record.id)->name, "sales-team");
  EXPECT_FALSE(keys.find("nobody").has_value());
  EXPECT_FALSE(keys.find(k.key).has_value());  // the key itself is not an id

  const auto admin = keys.create("ops", AccessScopes{.admin = true}, {});
  const auto list = keys.list();
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].name, "sales-team");  // oldest first
  EXPECT_EQ(list[1].name, "ops");
  EXPECT_TRUE(list[1].scopes.admin);
  EXPECT_TRUE(list[1].scopes.tasks.empty());  // all
  EXPECT_FALSE(list[1].limits.any());
  EXPECT_EQ(keys.active_count(), 2);
}

TEST_F(StoreKeys, Refusals) {
  Database db(path_);
  KeyStore keys(db);
  const auto k = keys.create("a", {}, {});
  KeyRefusal why = KeyRefusal::kNone;

  EXPECT_FALSE(keys.verify("", &why));
  EXPECT_EQ(why, KeyRefusal::kMalformed);
  EXPECT_FALSE(keys.verify("Bearer " + k.key, &why));
  EXPECT_EQ(why, KeyRefusal::kMalformed);
  EXPECT_FALSE(keys.verify(k.key.substr(0, 30), &why));
  EXPECT_EQ(why, KeyRefusal::kMalformed);

  EXPECT_FALSE(keys.verify("mms_zzzzzzzz_" + k.key.substr(13), &why));
  EXPECT_EQ(why, KeyRefusal::kUnknown);

  std::string wrong = k.key;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE(keys.verify(wrong, &why));
  EXPECT_EQ(why, KeyRefusal::kWrongSecret);

  keys.revoke("a");
  EXPECT_FALSE(keys.verify(k.key, &why));
  EXPECT_EQ(why, KeyRefusal::kRevoked);
  EXPECT_FALSE(keys.verify(wrong, &why));  // the secret is checked before the state
  EXPECT_EQ(why, KeyRefusal::kWrongSecret);

  EXPECT_FALSE(keys.verify(k.key));  // refusal pointer optional
}

TEST_F(StoreKeys, NamesAreValidatedAndUniqueRevokedIncluded) {
  Database db(path_);
  KeyStore keys(db);
  std::string field;
  for (const std::string& bad :
       {std::string(), std::string("has space"), std::string("ä"), std::string(65, 'x'),
        std::string("a,b"), std::string("mms_x"), std::string("admin"), std::string("api-key"),
        std::string("anonymous")}) {
    EXPECT_EQ(code_of([&] { keys.create(bad, {}, {}); }, &field), ErrorCode::kInvalidInput) << bad;
    EXPECT_EQ(field, "name");
  }
  EXPECT_NO_THROW(keys.create(std::string(64, 'x'), {}, {}));
  EXPECT_NO_THROW(keys.create("Team_1.prod-eu", {}, {}));

  keys.create("dup", {}, {});
  EXPECT_EQ(code_of([&] { keys.create("dup", {}, {}); }, &field), ErrorCode::kInvalidInput);
  EXPECT_EQ(field, "name");
  keys.revoke("dup");
  EXPECT_EQ(code_of([&] { keys.create("dup", {}, {}); }, &field), ErrorCode::kInvalidInput);
  EXPECT_EQ(keys.list().size(), 3U);
}

TEST_F(StoreKeys, ScopesAndLimitsThatCannotBeStoredAreRefused) {
  Database db(path_);
  KeyStore keys(db);
  EXPECT_EQ(code_of([&] { keys.create("a", AccessScopes{.models = {"a,b"}}, {}); }),
            ErrorCode::kInvalidInput);
  EXPECT_EQ(code_of([&] { keys.create("a", AccessScopes{.tasks = {""}}, {}); }),
            ErrorCode::kInvalidInput);
  EXPECT_EQ(code_of([&] { keys.create("a", {}, RateLimits{.requests_per_minute = -1}); }),
            ErrorCode::kInvalidInput);
  EXPECT_TRUE(keys.list().empty());
}

TEST_F(StoreKeys, RevokeIsIdempotentAndKeepsTheFirstTime) {
  Database db(path_);
  KeyStore keys(db);
  const auto k = keys.create("a", {}, {});
  const auto first = keys.revoke(k.record.id);
  EXPECT_FALSE(first.active());
  EXPECT_GT(first.revoked_ms, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  const auto again = keys.revoke("a");
  EXPECT_EQ(again.revoked_ms, first.revoked_ms);
  EXPECT_EQ(keys.active_count(), 0);
  EXPECT_EQ(keys.list().size(), 1U);
  std::string field;
  EXPECT_EQ(code_of([&] { keys.revoke("nobody"); }, &field), ErrorCode::kNotFound);
  EXPECT_EQ(field, "key");
}

TEST_F(StoreKeys, RotateReplacesTheSecretOnly) {
  Database db(path_);
  KeyStore keys(db);
  const auto k = keys.create("a", text_only(), some_limits());
  const auto r = keys.rotate("a");
  EXPECT_NE(r.key, k.key);
  EXPECT_EQ(r.record.id, k.record.id);
  EXPECT_EQ(mmserve::store::key_id_of(r.key), k.record.id);
  EXPECT_GT(r.record.rotated_ms, 0);
  EXPECT_EQ(r.record.created_ms, k.record.created_ms);

  KeyRefusal why = KeyRefusal::kNone;
  EXPECT_FALSE(keys.verify(k.key, &why));
  EXPECT_EQ(why, KeyRefusal::kWrongSecret);
  const auto v = keys.verify(r.key);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->scopes.models, text_only().models);
  EXPECT_EQ(v->limits.requests_per_minute, 60);
  EXPECT_EQ(v->rotated_ms, r.record.rotated_ms);

  std::string field;
  EXPECT_EQ(code_of([&] { keys.rotate("nobody"); }, &field), ErrorCode::kNotFound);
  EXPECT_EQ(field, "key");
  keys.revoke("a");
  EXPECT_EQ(code_of([&] { keys.rotate("a"); }, &field), ErrorCode::kInvalidInput);
  EXPECT_EQ(field, "key");
}

TEST_F(StoreKeys, UpdateChangesScopesAndLimits) {
  Database db(path_);
  KeyStore keys(db);
  const auto k = keys.create("a", text_only(), some_limits());
  const auto u =
      keys.update(k.record.id, AccessScopes{.admin = true}, RateLimits{.concurrent_requests = 2});
  EXPECT_TRUE(u.scopes.tasks.empty());
  EXPECT_TRUE(u.scopes.admin);
  EXPECT_FALSE(u.scopes.cloud);
  const auto v = keys.verify(k.key);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->scopes.endpoints.empty());
  EXPECT_TRUE(v->scopes.admin);
  EXPECT_EQ(v->limits.requests_per_minute, 0);
  EXPECT_EQ(v->limits.concurrent_requests, 2);
  std::string field;
  EXPECT_EQ(code_of([&] { keys.update("nobody", {}, {}); }, &field), ErrorCode::kNotFound);
  EXPECT_EQ(field, "key");
}

TEST_F(StoreKeys, TheSecretIsNeverStored) {
  std::vector<std::string> secrets;
  {
    Database db(path_);
    KeyStore keys(db);
    for (int i = 0; i < 5; ++i) {
      secrets.push_back(keys.create("k" + std::to_string(i), {}, {}).key);
    }
    secrets.push_back(keys.rotate("k0").key);
    const std::string live = raw_bytes();  // WAL still open
    for (const auto& s : secrets) {
      EXPECT_EQ(live.find(s), std::string::npos);
      EXPECT_EQ(live.find(s.substr(13)), std::string::npos);  // nor its random part
    }
  }
  const std::string closed = raw_bytes();  // checkpointed into the main file
  ASSERT_FALSE(closed.empty());
  for (const auto& s : secrets) {
    EXPECT_EQ(closed.find(s.substr(13)), std::string::npos);
  }
  // What is stored is the SHA-256, as a 32-byte blob.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(raw, "SELECT typeof(hash), length(hash) FROM keys", -1, &st, nullptr),
      SQLITE_OK);
  int rows = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "blob");
    EXPECT_EQ(sqlite3_column_int(st, 1), 32);
    ++rows;
  }
  EXPECT_EQ(rows, 5);
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

TEST_F(StoreKeys, TwoConnectionsSeeEachOthersChangesAtOnce) {
  Database cli_db(path_);
  Database server_db(path_);
  KeyStore cli(cli_db);
  KeyStore server(server_db);
  const auto k = cli.create("a", {}, {});
  ASSERT_TRUE(server.verify(k.key));
  cli.revoke("a");
  KeyRefusal why = KeyRefusal::kNone;
  EXPECT_FALSE(server.verify(k.key, &why));
  EXPECT_EQ(why, KeyRefusal::kRevoked);

  const auto b = server.create("b", {}, {});
  const auto rotated = cli.rotate(b.record.id);
  EXPECT_FALSE(server.verify(b.key, &why));
  EXPECT_EQ(why, KeyRefusal::kWrongSecret);
  EXPECT_TRUE(server.verify(rotated.key));
  cli.update("b", {}, RateLimits{.requests_per_minute = 7});
  EXPECT_EQ(server.verify(rotated.key)->limits.requests_per_minute, 7);
  EXPECT_EQ(server.active_count(), 1);
}

TEST_F(StoreKeys, ReopeningKeepsEverythingAndTheSchemaOnce) {
  std::string key;
  {
    Database db(path_);
    key = KeyStore(db).create("a", text_only(), {}).key;
  }
  for (int i = 0; i < 3; ++i) {
    Database db(path_);
    ASSERT_TRUE(KeyStore(db).verify(key));
    EXPECT_EQ(KeyStore(db).list().size(), 1U);
  }
  Database db(path_);
  const auto lock = db.lock();
  mmserve::store::Statement version(db, "PRAGMA user_version");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.int64(0), 2);  // 2: keys' capture flag
  mmserve::store::Statement mode(db, "PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.text(0), "wal");
  mmserve::store::Statement tables(
      db, "SELECT count(*) FROM sqlite_master WHERE name IN ('keys', 'audit')");
  ASSERT_TRUE(tables.step());
  EXPECT_EQ(tables.int64(0), 2);
}

TEST_F(StoreKeys, ANewerSchemaIsRefused) {
  { Database db(path_); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 3", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  try {
    Database db(path_);
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "db");
    EXPECT_NE(std::string(e.what()).find("newer mmserve"), std::string::npos) << e.what();
  }
}

TEST_F(StoreKeys, AFileThatIsNotSQLiteIsRefused) {
  std::ofstream(path_) << "name,key\nsales,mms_12345678_abc\n" << std::string(4096, 'x');
  try {
    Database db(path_);
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "db");
    EXPECT_NE(std::string(e.what()).find("is not an SQLite database"), std::string::npos)
        << e.what();
  }
  // And it is left as it was.
  std::ifstream in(path_);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "name,key");
}

TEST_F(StoreKeys, AMissingDirectoryIsAClearError) {
  try {
    Database db((dir_ / "no" / "such" / "mmserve.db").string());
    FAIL() << "opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(e.field(), "db");
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  EXPECT_EQ(code_of([] { Database db(""); }), ErrorCode::kInvalidInput);
  EXPECT_FALSE(fs::exists(dir_ / "no"));
}

TEST_F(StoreKeys, PathFromFlagThenEnvironment) {
  ::setenv("MMSERVE_DB", "/env/mmserve.db", 1);
  EXPECT_EQ(mmserve::store::database_path_from("/flag.db"), "/flag.db");
  EXPECT_EQ(mmserve::store::database_path_from(""), "/env/mmserve.db");
  ::unsetenv("MMSERVE_DB");
  EXPECT_EQ(mmserve::store::database_path_from(""), "");
}

TEST_F(StoreKeys, VerifyRacingARevoke) {
  Database server_db(path_);
  Database cli_db(path_);
  KeyStore server(server_db);
  KeyStore cli(cli_db);
  const auto k = cli.create("a", {}, {});
  std::atomic<bool> revoked{false};
  std::atomic<bool> stop{false};
  std::atomic<int> late_accepts{0};
  std::atomic<int> verifies{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const bool was_revoked = revoked.load();  // read before verifying
        const bool ok = server.verify(k.key).has_value();
        if (ok && was_revoked) {
          ++late_accepts;
        }
        ++verifies;
      }
    });
  }
  while (verifies.load() < 200) {
    std::this_thread::yield();
  }
  cli.revoke("a");
  revoked.store(true);
  const int at_revoke = verifies.load();
  while (verifies.load() < at_revoke + 200) {
    std::this_thread::yield();
  }
  stop.store(true);
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(late_accepts.load(), 0);
  EXPECT_FALSE(server.verify(k.key));
}

// verify() prepares its statement each call; this loop is how long that takes (no assertion on
// time: it is recorded as a test property, "verify_us", in --gtest_output=xml).
TEST_F(StoreKeys, VerifyCost) {
  Database db(path_);
  KeyStore keys(db);
  for (int i = 0; i < 100; ++i) {
    keys.create("k" + std::to_string(i), {}, {});
  }
  const auto k = keys.create("measured", {}, {});
  constexpr int kRounds = 2000;
  const auto start = std::chrono::steady_clock::now();
  int ok = 0;
  for (int i = 0; i < kRounds; ++i) {
    ok += keys.verify(k.key).has_value() ? 1 : 0;
  }
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  EXPECT_EQ(ok, kRounds);
  RecordProperty("verify_us", std::to_string(us));
}
