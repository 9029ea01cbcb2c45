// The audit store over a real SQLite file: append and read back every field, the window, key
// and limit filters, usage totals, pruning, appends from many threads, and a second connection
// (as `mmserve audit` beside a running server) reading what the first wrote.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/audit_store.h"

namespace fs = std::filesystem;
using mmserve::store::AuditQuery;
using mmserve::store::AuditRow;
using mmserve::store::AuditStore;
using mmserve::store::Database;

namespace {

class StoreAudit : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "mmserve-audit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "mmserve.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

AuditRow row(int64_t time_ms, std::string key, int status = 200, int64_t prompt = 10,
             int64_t completion = 5, double audio = 0) {
  AuditRow r;
  r.time_ms = time_ms;
  r.request_id = "req-" + std::to_string(time_ms);
  r.key = std::move(key);
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.task = "text-gen";
  r.model = "stories";
  r.route = "local";
  r.status = status;
  r.error_type = status >= 400 ? "rate_limited" : "";
  r.prompt_tokens = prompt;
  r.completion_tokens = completion;
  r.audio_seconds = audio;
  r.duration_ms = 12.5;
  r.client = "127.0.0.1";
  r.charged = status < 400;
  return r;
}

std::vector<int64_t> times(const std::vector<AuditRow>& rows) {
  std::vector<int64_t> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    out.push_back(r.time_ms);
  }
  return out;
}

}  // namespace

TEST_F(StoreAudit, AppendAndReadBackEveryField) {
  Database db(path_);
  AuditStore audit(db);
  AuditRow r = row(1'700'000'000'123, "mms_abcdefgh", 429, 17, 0, 2.25);
  r.path = "/v1/audio/transcriptions,odd \"path\"";
  r.client = "[::1]:5555";
  r.route = "cloud";
  audit.append(r);
  const auto rows = audit.query({});
  ASSERT_EQ(rows.size(), 1U);
  const AuditRow& g = rows[0];
  EXPECT_EQ(g.time_ms, r.time_ms);
  EXPECT_EQ(g.request_id, r.request_id);
  EXPECT_EQ(g.key, r.key);
  EXPECT_EQ(g.method, r.method);
  EXPECT_EQ(g.path, r.path);
  EXPECT_EQ(g.task, r.task);
  EXPECT_EQ(g.model, r.model);
  EXPECT_EQ(g.route, "cloud");
  EXPECT_EQ(g.status, 429);
  EXPECT_EQ(g.error_type, "rate_limited");
  EXPECT_EQ(g.prompt_tokens, 17);
  EXPECT_EQ(g.completion_tokens, 0);
  EXPECT_DOUBLE_EQ(g.audio_seconds, 2.25);
  EXPECT_DOUBLE_EQ(g.duration_ms, 12.5);
  EXPECT_EQ(g.client, "[::1]:5555");
  EXPECT_FALSE(g.charged);
}

TEST_F(StoreAudit, WindowKeyAndLimit) {
  Database db(path_);
  AuditStore audit(db);
  // Appended out of order: results are by time, oldest first.
  for (const int64_t t : {5000, 1000, 3000, 2000, 4000}) {
    audit.append(row(t, t % 2000 == 0 ? "mms_aaaaaaaa" : "admin"));
  }
  EXPECT_EQ(times(audit.query({})), (std::vector<int64_t>{1000, 2000, 3000, 4000, 5000}));
  EXPECT_EQ(times(audit.query({.since_ms = 2000, .until_ms = 4000})),
            (std::vector<int64_t>{2000, 3000}));  // since inclusive, until exclusive
  EXPECT_EQ(times(audit.query({.key = "mms_aaaaaaaa"})), (std::vector<int64_t>{2000, 4000}));
  EXPECT_EQ(times(audit.query({.key = "admin"})), (std::vector<int64_t>{1000, 3000, 5000}));
  EXPECT_TRUE(audit.query({.key = "nobody"}).empty());
  EXPECT_EQ(times(audit.query({.limit = 2})), (std::vector<int64_t>{4000, 5000}));  // newest 2
  EXPECT_EQ(times(audit.query({.until_ms = 5000, .key = "admin", .limit = 1})),
            (std::vector<int64_t>{3000}));
  EXPECT_EQ(audit.query({.limit = 100}).size(), 5U);
}

TEST_F(StoreAudit, RowsWithTheSameTimeKeepTheirOrder) {
  Database db(path_);
  AuditStore audit(db);
  for (int i = 0; i < 5; ++i) {
    AuditRow r = row(1000, "anonymous");
    r.request_id = "r" + std::to_string(i);
    audit.append(r);
  }
  const auto newest = audit.query({.limit = 2});
  ASSERT_EQ(newest.size(), 2U);
  EXPECT_EQ(newest[0].request_id, "r3");
  EXPECT_EQ(newest[1].request_id, "r4");
}

TEST_F(StoreAudit, UsagePerKey) {
  Database db(path_);
  AuditStore audit(db);
  audit.append(row(1000, "mms_bbbbbbbb", 200, 10, 20));
  audit.append(row(2000, "mms_bbbbbbbb", 429, 0, 0));
  audit.append(row(3000, "mms_bbbbbbbb", 200, 1, 2, 3.5));
  audit.append(row(4000, "api-key", 500, 4, 0));
  audit.append(row(9000, "mms_bbbbbbbb", 200, 100, 100));  // outside the window below
  const auto usage = audit.usage({.since_ms = 0, .until_ms = 5000, .limit = 1});  // limit ignored
  ASSERT_EQ(usage.size(), 2U);
  EXPECT_EQ(usage[0].key, "api-key");  // sorted by key
  EXPECT_EQ(usage[0].requests, 1);
  EXPECT_EQ(usage[0].refused, 1);
  EXPECT_EQ(usage[0].prompt_tokens, 4);
  EXPECT_EQ(usage[1].key, "mms_bbbbbbbb");
  EXPECT_EQ(usage[1].requests, 3);
  EXPECT_EQ(usage[1].refused, 1);
  EXPECT_EQ(usage[1].prompt_tokens, 11);
  EXPECT_EQ(usage[1].completion_tokens, 22);
  EXPECT_DOUBLE_EQ(usage[1].audio_seconds, 3.5);
  const auto one = audit.usage({.key = "mms_bbbbbbbb"});
  ASSERT_EQ(one.size(), 1U);
  EXPECT_EQ(one[0].requests, 4);
  EXPECT_TRUE(audit.usage({.since_ms = 10'000}).empty());
}

TEST_F(StoreAudit, Prune) {
  Database db(path_);
  AuditStore audit(db);
  for (int64_t t = 1000; t <= 5000; t += 1000) {
    audit.append(row(t, "admin"));
  }
  EXPECT_EQ(audit.prune(3000), 2);
  EXPECT_EQ(times(audit.query({})), (std::vector<int64_t>{3000, 4000, 5000}));
  EXPECT_EQ(audit.prune(3000), 0);
  EXPECT_EQ(audit.prune(1'000'000), 3);
  EXPECT_TRUE(audit.query({}).empty());
}

TEST_F(StoreAudit, AppendsFromManyThreadsAreAllThereForASecondConnection) {
  constexpr int kThreads = 8;
  constexpr int kEach = 100;
  Database server_db(path_);
  AuditStore server(server_db);
  Database reader_db(path_);
  AuditStore reader(reader_db);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&server, t] {
      for (int i = 0; i < kEach; ++i) {
        AuditRow r = row(1000 + i, "mms_" + std::string(8, static_cast<char>('a' + t)));
        r.request_id = std::to_string(t) + "-" + std::to_string(i);
        server.append(r);
      }
    });
  }
  // Reading on the other connection meanwhile never blocks or fails the writers (WAL).
  for (int i = 0; i < 20; ++i) {
    EXPECT_LE(reader.query({}).size(), static_cast<size_t>(kThreads * kEach));
  }
  for (auto& t : threads) {
    t.join();
  }
  const auto rows = reader.query({});
  ASSERT_EQ(rows.size(), static_cast<size_t>(kThreads * kEach));
  std::set<std::string> ids;
  for (const auto& r : rows) {
    ids.insert(r.request_id);
  }
  EXPECT_EQ(ids.size(), rows.size());
  const auto usage = reader.usage({});
  ASSERT_EQ(usage.size(), static_cast<size_t>(kThreads));
  for (const auto& u : usage) {
    EXPECT_EQ(u.requests, kEach);
  }
}

TEST_F(StoreAudit, RowsSurviveReopening) {
  {
    Database db(path_);
    AuditStore(db).append(row(42, "anonymous", 401));
  }
  Database db(path_);
  const auto rows = AuditStore(db).query({});
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].status, 401);
}
