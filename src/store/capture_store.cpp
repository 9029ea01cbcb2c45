#include "store/capture_store.h"

#include <sqlite3.h>

#include <cstdlib>

#include "core/error.h"

namespace mmserve::store {
namespace {

constexpr const char* kCaptureSchemaV1 = R"(
CREATE TABLE captures (
  id INTEGER PRIMARY KEY,
  response_id TEXT UNIQUE NOT NULL,
  request_id TEXT NOT NULL DEFAULT '',
  time_ms INTEGER NOT NULL,
  model TEXT NOT NULL DEFAULT '',
  key_id TEXT NOT NULL DEFAULT '',
  key_name TEXT NOT NULL DEFAULT '',
  endpoint TEXT NOT NULL DEFAULT '',
  task TEXT NOT NULL DEFAULT '',
  route TEXT NOT NULL DEFAULT '',
  parameters TEXT NOT NULL DEFAULT '{}',
  messages TEXT NOT NULL DEFAULT '[]',
  answer TEXT NOT NULL DEFAULT '',
  tool_calls TEXT NOT NULL DEFAULT '',
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  duration_ms REAL NOT NULL DEFAULT 0,
  ttft_ms REAL NOT NULL DEFAULT 0,
  finish_reason TEXT NOT NULL DEFAULT '',
  redactions TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX captures_time ON captures (time_ms);
CREATE TABLE feedback (
  id INTEGER PRIMARY KEY,
  response_id TEXT NOT NULL,
  key_id TEXT NOT NULL DEFAULT '',
  time_ms INTEGER NOT NULL,
  rating REAL,
  correction TEXT,
  comment TEXT,
  redactions TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX feedback_response ON feedback (response_id, id);
PRAGMA user_version = 1;
)";

const Schema& capture_schema() {
  static const Schema schema{.steps = {kCaptureSchemaV1}, .field = "capture-db"};
  return schema;
}

constexpr const char* kEntryColumns =
    "c.response_id, c.request_id, c.time_ms, c.model, c.key_id, c.key_name, c.endpoint, c.task, "
    "c.route, c.parameters, c.messages, c.answer, c.tool_calls, c.prompt_tokens, "
    "c.completion_tokens, c.duration_ms, c.ttft_ms, c.finish_reason, c.redactions, "
    "f.response_id, f.key_id, f.time_ms, f.rating, f.correction, f.comment, f.redactions";

// The latest feedback of each response.
constexpr const char* kLatestFeedback =
    "LEFT JOIN feedback f ON f.id = (SELECT max(id) FROM feedback WHERE response_id = "
    "c.response_id)";

CaptureEntry read_entry(const Statement& s) {
  CaptureEntry e;
  auto& r = e.record;
  r.response_id = s.text(0);
  r.request_id = s.text(1);
  r.time_ms = s.int64(2);
  r.model = s.text(3);
  r.key_id = s.text(4);
  r.key_name = s.text(5);
  r.endpoint = s.text(6);
  r.task = s.text(7);
  r.route = s.text(8);
  r.parameters_json = s.text(9);
  r.messages_json = s.text(10);
  r.answer = s.text(11);
  r.tool_calls_json = s.text(12);
  r.prompt_tokens = s.int64(13);
  r.completion_tokens = s.int64(14);
  r.duration_ms = s.real(15);
  r.ttft_ms = s.real(16);
  r.finish_reason = s.text(17);
  r.redactions_json = s.text(18);
  if (!s.is_null(19)) {
    FeedbackRecord f;
    f.response_id = s.text(19);
    f.key_id = s.text(20);
    f.time_ms = s.int64(21);
    if (!s.is_null(22)) f.rating = s.real(22);
    if (!s.is_null(23)) f.correction = s.text(23);
    if (!s.is_null(24)) f.comment = s.text(24);
    f.redactions_json = s.text(25);
    e.feedback = std::move(f);
  }
  return e;
}

}  // namespace

std::string capture_path_from(const std::string& flag_value) {
  return path_from(flag_value, "MMSERVE_CAPTURE_DB");
}

CaptureStore::CaptureStore(const std::string& path, int64_t max_bytes)
    : db_(path, capture_schema()), max_bytes_(max_bytes) {
  if (max_bytes_ > 0) {
    const auto lock = db_.lock();
    const int64_t page = scalar(db_, "PRAGMA page_size");
    // A hard cap (SQLite keeps it at least the pages there are).
    db_.exec("PRAGMA max_page_count = " + std::to_string(std::max<int64_t>(1, max_bytes_ / page)));
  }
}

AppendResult CaptureStore::append(const CaptureRecord& r) {
  const auto lock = db_.lock();
  if (max_bytes_ > 0 &&
      scalar(db_, "PRAGMA page_count") * scalar(db_, "PRAGMA page_size") -
              scalar(db_, "PRAGMA freelist_count") * scalar(db_, "PRAGMA page_size") >=
          max_bytes_) {
    return AppendResult::kFull;
  }
  try {
    Statement& s = db_.cached(
        "INSERT OR REPLACE INTO captures (response_id, request_id, time_ms, model, key_id, "
        "key_name, endpoint, task, route, parameters, messages, answer, tool_calls, "
        "prompt_tokens, completion_tokens, duration_ms, ttft_ms, finish_reason, redactions) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
        "?19)");
    s.bind(1, r.response_id)
        .bind(2, r.request_id)
        .bind(3, r.time_ms)
        .bind(4, r.model)
        .bind(5, r.key_id)
        .bind(6, r.key_name)
        .bind(7, r.endpoint)
        .bind(8, r.task)
        .bind(9, r.route)
        .bind(10, r.parameters_json)
        .bind(11, r.messages_json)
        .bind(12, r.answer)
        .bind(13, r.tool_calls_json)
        .bind(14, r.prompt_tokens)
        .bind(15, r.completion_tokens)
        .bind(16, r.duration_ms)
        .bind(17, r.ttft_ms)
        .bind(18, r.finish_reason)
        .bind(19, r.redactions_json);
    s.run();
  } catch (const Error&) {
    if ((sqlite3_errcode(db_.handle()) & 0xff) == SQLITE_FULL) {
      return AppendResult::kFull;
    }
    throw;
  }
  return AppendResult::kWritten;
}

void CaptureStore::add_feedback(const FeedbackRecord& f) {
  const auto lock = db_.lock();
  Statement s(db_,
              "INSERT INTO feedback (response_id, key_id, time_ms, rating, correction, comment, "
              "redactions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.bind(1, f.response_id).bind(2, f.key_id).bind(3, f.time_ms);
  if (f.rating) {
    s.bind(4, *f.rating);
  } else {
    s.bind_null(4);
  }
  if (f.correction) {
    s.bind(5, *f.correction);
  } else {
    s.bind_null(5);
  }
  if (f.comment) {
    s.bind(6, *f.comment);
  } else {
    s.bind_null(6);
  }
  s.bind(7, f.redactions_json).run();
}

std::optional<std::string> CaptureStore::owner(const std::string& response_id) const {
  const auto lock = db_.lock();
  Statement s(db_, "SELECT key_id FROM captures WHERE response_id = ?1");
  s.bind(1, response_id);
  if (!s.step()) {
    return std::nullopt;
  }
  return s.text(0);
}

std::optional<CaptureEntry> CaptureStore::find(const std::string& response_id) const {
  CaptureQuery q;
  q.response_ids = {response_id};
  auto rows = query(q);
  if (rows.empty()) {
    return std::nullopt;
  }
  return std::move(rows.front());
}

std::vector<CaptureEntry> CaptureStore::query(const CaptureQuery& q) const {
  std::string sql = std::string("SELECT ") + kEntryColumns + " FROM captures c " + kLatestFeedback +
                    " WHERE c.time_ms >= ?1 AND c.time_ms < ?2";
  if (!q.model.empty()) sql += " AND c.model = ?3";
  if (!q.key.empty()) sql += " AND (c.key_id = ?4 OR c.key_name = ?4)";
  switch (q.rating) {
    case RatingFilter::kAny: break;
    case RatingFilter::kUp: sql += " AND f.rating > 0"; break;
    case RatingFilter::kDown: sql += " AND f.rating < 0"; break;
    case RatingFilter::kNone: sql += " AND f.rating IS NULL"; break;
    case RatingFilter::kRated: sql += " AND f.rating IS NOT NULL"; break;
  }
  if (!q.response_ids.empty()) {
    sql += " AND c.response_id IN (";
    for (size_t i = 0; i < q.response_ids.size(); ++i) {
      sql += (i > 0 ? ",?" : "?") + std::to_string(i + 10);
    }
    sql += ")";
  }
  sql += " ORDER BY c.time_ms DESC, c.id DESC";
  if (q.limit > 0) sql += " LIMIT " + std::to_string(q.limit);
  const auto lock = db_.lock();
  Statement s(db_, sql);
  s.bind(1, q.since_ms).bind(2, q.until_ms);
  if (!q.model.empty()) s.bind(3, q.model);
  if (!q.key.empty()) s.bind(4, q.key);
  for (size_t i = 0; i < q.response_ids.size(); ++i) {
    s.bind(static_cast<int>(i + 10), q.response_ids[i]);
  }
  std::vector<CaptureEntry> out;
  while (s.step()) {
    out.push_back(read_entry(s));
  }
  return {out.rbegin(), out.rend()};
}

int64_t CaptureStore::remove(const std::vector<std::string>& response_ids) {
  const auto lock = db_.lock();
  Transaction tx(db_);
  int64_t deleted = 0;
  Statement c(db_, "DELETE FROM captures WHERE response_id = ?1");
  Statement f(db_, "DELETE FROM feedback WHERE response_id = ?1");
  for (const auto& id : response_ids) {
    deleted += c.bind(1, id).run();
    f.bind(1, id).run();
  }
  tx.commit();
  return deleted;
}

int64_t CaptureStore::prune(int64_t before_ms) {
  const auto lock = db_.lock();
  Transaction tx(db_);
  Statement f(db_,
              "DELETE FROM feedback WHERE response_id IN (SELECT response_id FROM captures WHERE "
              "time_ms < ?1) OR time_ms < ?1");
  f.bind(1, before_ms).run();
  Statement c(db_, "DELETE FROM captures WHERE time_ms < ?1");
  const int64_t deleted = c.bind(1, before_ms).run();
  tx.commit();
  return deleted;
}

int64_t CaptureStore::size_bytes() const {
  const auto lock = db_.lock();
  return scalar(db_, "PRAGMA page_count") * scalar(db_, "PRAGMA page_size");
}

}  // namespace mmserve::store
