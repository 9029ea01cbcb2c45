// The server's SQLite database (Debian's libsqlite3): API keys, and the audit log from which
// usage and quotas are read. One file, WAL mode, so that `mmserve keys` and `mmserve audit` read
// and write it while a server runs (readers never block the writer; writers wait up to
// busy_timeout for each other). synchronous=NORMAL: a commit survives the process being killed
// (SIGKILL), not a power cut in the instant after it.
//
// Opening creates the file and its tables when absent and upgrades an older schema
// (PRAGMA user_version); a newer schema than this binary knows is refused.
//
// Ownership: owns one connection. Threading: every method is thread-safe; a Statement is used
// under the database's lock (Database::Lock), which the stores take for each of their methods.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace mmserve::store {

class Statement;

// A database's schema: `steps[i]` upgrades version i to i + 1 (and ends with
// "PRAGMA user_version = i + 1"); `field` names the file in errors ("db", "capture-db").
struct Schema {
  std::vector<const char*> steps;
  std::string field = "db";
};
// The keys and audit schema (the default).
const Schema& keys_schema();

// A database file: the flag's value, else the environment variable's; "" when neither names one.
std::string path_from(const std::string& flag_value, const char* env_name);
// The database file: --db, else $MMSERVE_DB.
std::string database_path_from(const std::string& flag_value);

class Database {
 public:
  // Error(kInvalidInput, field "db") when the file cannot be opened or created, is not an
  // SQLite database, or has a newer schema.
  explicit Database(const std::string& path);
  // Another schema in its own file (the capture store's).
  Database(const std::string& path, const Schema& schema);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }

  // Held while statements run; the stores take it for each method.
  std::unique_lock<std::mutex> lock() const { return std::unique_lock(mutex_); }
  // Runs SQL without results (several statements allowed). Caller holds lock().
  void exec(std::string_view sql) const;
  sqlite3* handle() const { return db_; }
  // The statement for `sql`, prepared once and kept for the connection's life: the per-request
  // statements (a key's lookup, an audit row) skip SQLite's parser. Caller holds lock() while
  // it uses the statement, and resets it when done (an unreset SELECT holds its snapshot).
  Statement& cached(const std::string& sql) const;

 private:
  void migrate(const Schema& schema);

  std::string path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;  // under mutex_
};

// A prepared statement, reset for reuse by bind(). Error(kInternal, "database ...") on SQLite
// failures (kUnavailable when the database stays locked past busy_timeout).
class Statement {
 public:
  Statement(const Database& db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, int64_t value);  // 1-based, as SQLite
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view value);
  Statement& bind_null(int index);
  // Steps once: true when a row is there to read, false when done.
  bool step();
  // Steps to the end (INSERT, UPDATE, DELETE); the rows changed.
  int64_t run();
  void reset();

  int64_t int64(int column) const;
  double real(int column) const;
  std::string text(int column) const;
  bool is_null(int column) const;

 private:
  const Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when destroyed uncommitted. Caller holds lock().
class Transaction {
 public:
  explicit Transaction(const Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  const Database& db_;
  bool done_ = false;
};

// The one integer a PRAGMA or SELECT returns (0 when it returns no row). Caller holds lock().
int64_t scalar(const Database& db, std::string_view sql);

// Milliseconds since the Unix epoch, now.
int64_t unix_ms_now();

}  // namespace mmserve::store
