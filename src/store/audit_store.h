// The audit log in the database: one row per API request, refused ones included, never its
// content: when it started, its request id, the key (a key's public id, "api-key", "admin" or
// "anonymous"), method and path, task, model, route (local/cloud), HTTP status, error type,
// prompt and completion tokens, audio seconds, duration and the client's address; and whether it
// was charged to its key's request quota. The quota stage rebuilds its windows from these rows
// at start-up, so a restart does not reset usage.
//
// append() commits before it returns: the edge calls it before the last bytes of a response are
// sent, so a request its client saw complete has its row even if the process is killed next.
//
// Threading: thread-safe (the database's lock). Borrows the Database.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "store/database.h"

namespace mmserve::store {

struct AuditRow {
  int64_t time_ms = 0;  // the request's start, Unix milliseconds
  std::string request_id;
  std::string key;  // public id, "api-key", "admin", "anonymous"; a refused key: its id or ""
  std::string method, path;
  std::string task, model, route;
  int status = 0;
  std::string error_type;  // the error body's type; "" when it succeeded
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double audio_seconds = 0;
  double duration_ms = 0;
  std::string client;    // remote address
  bool charged = false;  // counted against the key's requests-per-minute
};

struct AuditQuery {
  int64_t since_ms = 0;                                    // inclusive
  int64_t until_ms = std::numeric_limits<int64_t>::max();  // exclusive
  std::string key;                                         // "" = every key
  int64_t limit = 0;  // 0 = all; else the newest `limit` rows (still returned oldest first)
};

// Per key, over a query's window.
struct UsageTotals {
  std::string key;
  int64_t requests = 0;  // rows
  int64_t refused = 0;   // status >= 400
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double audio_seconds = 0;
};

class AuditStore {
 public:
  explicit AuditStore(const Database& db) : db_(db) {}

  void append(const AuditRow& row);
  // Rows in the window (and of the key), oldest first.
  std::vector<AuditRow> query(const AuditQuery& query) const;
  // Totals per key over the window (limit ignored), sorted by key.
  std::vector<UsageTotals> usage(const AuditQuery& query) const;
  // Deletes rows older than `before_ms`; the number deleted.
  int64_t prune(int64_t before_ms);

 private:
  const Database& db_;
};

}  // namespace mmserve::store
