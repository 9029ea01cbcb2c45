#include "store/audit_store.h"

namespace mmserve::store {
namespace {

constexpr const char* kColumns =
    "time_ms, request_id, key, method, path, task, model, route, status, error_type, "
    "prompt_tokens, completion_tokens, audio_seconds, duration_ms, client, charged";

// The WHERE clause of a query; its parameters are ?1 (since), ?2 (until) and ?3 (key) when
// filtering by key.
std::string where(const AuditQuery& q) {
  std::string sql = " WHERE time_ms >= ?1 AND time_ms < ?2";
  if (!q.key.empty()) {
    sql += " AND key = ?3";
  }
  return sql;
}

void bind_window(Statement& s, const AuditQuery& q) {
  s.bind(1, q.since_ms).bind(2, q.until_ms);
  if (!q.key.empty()) {
    s.bind(3, q.key);
  }
}

}  // namespace

void AuditStore::append(const AuditRow& row) {
  auto lock = db_.lock();
  static const std::string kInsert = std::string("INSERT INTO audit (") + kColumns +
                                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                     "?12, ?13, ?14, ?15, ?16)";
  Statement& s = db_.cached(kInsert);
  s.bind(1, row.time_ms)
      .bind(2, row.request_id)
      .bind(3, row.key)
      .bind(4, row.method)
      .bind(5, row.path)
      .bind(6, row.task)
      .bind(7, row.model)
      .bind(8, row.route)
      .bind(9, int64_t{row.status})
      .bind(10, row.error_type)
      .bind(11, row.prompt_tokens)
      .bind(12, row.completion_tokens)
      .bind(13, row.audio_seconds)
      .bind(14, row.duration_ms)
      .bind(15, row.client)
      .bind(16, int64_t{row.charged ? 1 : 0})
      .run();  // autocommit: durable (WAL, synchronous=NORMAL) when this returns
  s.reset();
}

std::vector<AuditRow> AuditStore::query(const AuditQuery& query) const {
  auto lock = db_.lock();
  std::string sql = std::string("SELECT ") + kColumns + " FROM audit" + where(query);
  if (query.limit > 0) {
    // The newest `limit`, then back to oldest first.
    sql = std::string("SELECT ") + kColumns + " FROM (SELECT id, " + kColumns + " FROM audit" +
          where(query) + " ORDER BY time_ms DESC, id DESC LIMIT ?4) ORDER BY time_ms, id";
  } else {
    sql += " ORDER BY time_ms, id";
  }
  Statement s(db_, sql);
  bind_window(s, query);
  if (query.limit > 0) {
    s.bind(4, query.limit);
  }
  std::vector<AuditRow> out;
  while (s.step()) {
    AuditRow& r = out.emplace_back();
    r.time_ms = s.int64(0);
    r.request_id = s.text(1);
    r.key = s.text(2);
    r.method = s.text(3);
    r.path = s.text(4);
    r.task = s.text(5);
    r.model = s.text(6);
    r.route = s.text(7);
    r.status = static_cast<int>(s.int64(8));
    r.error_type = s.text(9);
    r.prompt_tokens = s.int64(10);
    r.completion_tokens = s.int64(11);
    r.audio_seconds = s.real(12);
    r.duration_ms = s.real(13);
    r.client = s.text(14);
    r.charged = s.int64(15) != 0;
  }
  return out;
}

std::vector<UsageTotals> AuditStore::usage(const AuditQuery& query) const {
  auto lock = db_.lock();
  Statement s(db_,
              "SELECT key, count(*), sum(status >= 400), sum(prompt_tokens), "
              "sum(completion_tokens), total(audio_seconds) FROM audit" +
                  where(query) + " GROUP BY key ORDER BY key");
  bind_window(s, query);
  std::vector<UsageTotals> out;
  while (s.step()) {
    UsageTotals& u = out.emplace_back();
    u.key = s.text(0);
    u.requests = s.int64(1);
    u.refused = s.int64(2);
    u.prompt_tokens = s.int64(3);
    u.completion_tokens = s.int64(4);
    u.audio_seconds = s.real(5);
  }
  return out;
}

int64_t AuditStore::prune(int64_t before_ms) {
  auto lock = db_.lock();
  Statement s(db_, "DELETE FROM audit WHERE time_ms < ?1");
  return s.bind(1, before_ms).run();
}

}  // namespace mmserve::store
