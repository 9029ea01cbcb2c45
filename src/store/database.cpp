#include "store/database.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace mmserve::store {
namespace {

constexpr int kBusyTimeoutMs = 5000;

// Version 1. Lists are comma-separated ('' = all); times are Unix milliseconds (0 = never).
constexpr const char* kSchemaV1 = R"(
CREATE TABLE keys (
  id TEXT PRIMARY KEY,
  name TEXT UNIQUE NOT NULL,
  hash BLOB NOT NULL,
  tasks TEXT NOT NULL DEFAULT '',
  models TEXT NOT NULL DEFAULT '',
  endpoints TEXT NOT NULL DEFAULT '',
  cloud INTEGER NOT NULL DEFAULT 0,
  admin INTEGER NOT NULL DEFAULT 0,
  rpm INTEGER NOT NULL DEFAULT 0,
  tpm INTEGER NOT NULL DEFAULT 0,
  audio_seconds_per_day INTEGER NOT NULL DEFAULT 0,
  concurrency INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  rotated_ms INTEGER NOT NULL DEFAULT 0,
  revoked_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  request_id TEXT NOT NULL DEFAULT '',
  key TEXT NOT NULL DEFAULT '',
  method TEXT NOT NULL DEFAULT '',
  path TEXT NOT NULL DEFAULT '',
  task TEXT NOT NULL DEFAULT '',
  model TEXT NOT NULL DEFAULT '',
  route TEXT NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 0,
  error_type TEXT NOT NULL DEFAULT '',
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  audio_seconds REAL NOT NULL DEFAULT 0,
  duration_ms REAL NOT NULL DEFAULT 0,
  client TEXT NOT NULL DEFAULT '',
  charged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_time ON audit (time_ms);
CREATE INDEX audit_key_time ON audit (key, time_ms);
PRAGMA user_version = 1;
)";

// Version 2: keys marked for capture (stages/capture).
constexpr const char* kSchemaV2 = R"(
ALTER TABLE keys ADD COLUMN capture INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 2;
)";

bool is_busy(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

[[noreturn]] void fail(const std::string& path, sqlite3* db, int rc) {
  const std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw Error(is_busy(rc) ? ErrorCode::kUnavailable : ErrorCode::kInternal,
              "database " + path + ": " + message);
}

}  // namespace

int64_t scalar(const Database& db, std::string_view sql) {
  Statement s(db, sql);
  return s.step() ? s.int64(0) : 0;
}

std::string path_from(const std::string& flag_value, const char* env_name) {
  if (!flag_value.empty()) {
    return flag_value;
  }
  const char* env = std::getenv(env_name);
  return env != nullptr ? std::string(env) : std::string();
}

std::string database_path_from(const std::string& flag_value) {
  return path_from(flag_value, "MMSERVE_DB");
}

const Schema& keys_schema() {
  static const Schema schema{.steps = {kSchemaV1, kSchemaV2}, .field = "db"};
  return schema;
}

Database::Database(const std::string& path) : Database(path, keys_schema()) {}

Database::Database(const std::string& path, const Schema& schema) : path_(path) {
  const std::string& field = schema.field;
  if (path.empty()) {
    throw Error(ErrorCode::kInvalidInput, "no database file given", field);
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    throw Error(
        ErrorCode::kInvalidInput,
        "database " + path + ": directory " + parent.string() + " does not exist (create it first)",
        field);
  }
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error(ErrorCode::kInvalidInput, "cannot open database " + path + ": " + message, field);
  }
  try {
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // The first read of the file's header: a file that is not SQLite fails here.
    const int probe =
        sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    if ((probe & 0xff) == SQLITE_NOTADB) {
      throw Error(ErrorCode::kInvalidInput, path + " is not an SQLite database", field);
    }
    if (probe != SQLITE_OK && !is_busy(probe)) {
      throw Error(ErrorCode::kInvalidInput,
                  "cannot open database " + path + ": " + sqlite3_errmsg(db_), field);
    }
    const auto guard = lock();
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs));
    exec("PRAGMA foreign_keys = ON");
    migrate(schema);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

Database::~Database() {
  cache_.clear();  // finalized before the connection closes
  sqlite3_close_v2(db_);
}

Statement& Database::cached(const std::string& sql) const {
  auto& slot = cache_[sql];
  if (!slot) {
    slot = std::make_unique<Statement>(*this, sql);
  }
  return *slot;
}

void Database::exec(std::string_view sql) const {
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    fail(path_, db_, rc);
  }
}

void Database::migrate(const Schema& schema) {
  const auto latest = static_cast<int64_t>(schema.steps.size());
  const auto newer = [this, &schema, latest](int64_t version) {
    if (version > latest) {
      throw Error(ErrorCode::kInvalidInput,
                  "database " + path_ + " (schema version " + std::to_string(version) +
                      ") was written by a newer mmserve; this one knows version " +
                      std::to_string(latest),
                  schema.field);
    }
  };
  int64_t version = scalar(*this, "PRAGMA user_version");
  newer(version);
  if (version == latest) {
    return;
  }
  Transaction tx(*this);
  // Read again under the write lock: another process may have migrated meanwhile.
  version = scalar(*this, "PRAGMA user_version");
  newer(version);
  for (; version < latest; ++version) {
    exec(schema.steps[static_cast<size_t>(version)]);
  }
  tx.commit();
}

Statement::Statement(const Database& db, std::string_view sql) : db_(db) {
  const int rc =
      sqlite3_prepare_v2(db.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    fail(db.path(), db.handle(), rc);
  }
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

// Binding needs a statement that is not mid-step; sqlite3_reset keeps earlier bindings, so
// reset-then-bind chains (bind(1, ..).bind(2, ..)) and reuse after step() both work.
Statement& Statement::bind(int index, int64_t value) {
  sqlite3_reset(stmt_);
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) {
    fail(db_.path(), db_.handle(), rc);
  }
  return *this;
}

Statement& Statement::bind(int index, double value) {
  sqlite3_reset(stmt_);
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) {
    fail(db_.path(), db_.handle(), rc);
  }
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  sqlite3_reset(stmt_);
  const int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) {
    fail(db_.path(), db_.handle(), rc);
  }
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_reset(stmt_);
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) {
    fail(db_.path(), db_.handle(), rc);
  }
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  sqlite3_reset(stmt_);
  fail(db_.path(), db_.handle(), rc);
}

int64_t Statement::run() {
  while (step()) {
  }
  return sqlite3_changes64(db_.handle());
}

void Statement::reset() {
  sqlite3_reset(stmt_);
}

int64_t Statement::int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

double Statement::real(int column) const {
  return sqlite3_column_double(stmt_, column);
}

// The bytes as stored: a BLOB's too (SQLite hands them over unchanged, NUL-terminated).
std::string Statement::text(int column) const {
  const auto* data = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  return data == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(data), size);
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

Transaction::Transaction(const Database& db) : db_(db) {
  db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (!done_) {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace mmserve::store
