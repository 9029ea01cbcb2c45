// The capture store: completed inference calls kept for fine-tuning (stages/capture), with
// personal data already replaced by placeholders, and the feedback clients send about them
// (POST /v1/feedback). Its own SQLite file (serve --capture-db), apart from the keys and audit
// database, so that a capture store that fills its disk never touches authentication or the
// audit log. WAL mode and schema versions as store/database.h.
//
// Tables: captures (one row per captured call, keyed by the response id the client got) and
// feedback (one row per feedback, joined to its capture at read time by response id: a feedback
// may arrive before the capture's row is written, and several may come for one response; the
// latest wins).
//
// Size cap: with max_bytes > 0, append() refuses a record while the file's pages exceed it
// (kFull), and SQLite's max_page_count makes the cap hard; an SQLITE_FULL from the disk itself
// is kFull too. New records are dropped, old ones are kept until retention prunes them.
//
// Threading: thread-safe (the database's lock). Owns its Database.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "store/database.h"

namespace mmserve::store {

// The capture database file: --capture-db, else $MMSERVE_CAPTURE_DB; "" when neither.
std::string capture_path_from(const std::string& flag_value);

struct CaptureRecord {
  std::string response_id;  // "chatcmpl-...", "inf-...", "resp_...", "cmpl-..."
  std::string request_id;
  int64_t time_ms = 0;  // the request's start, Unix milliseconds
  std::string model;    // the registry's name
  std::string key_id;   // the caller's id ("mms_...", "api-key", "anonymous")
  std::string key_name;
  std::string endpoint, task, route;
  std::string parameters_json = "{}";  // sampling, stop, max_tokens, ...
  std::string messages_json = "[]";    // OpenAI-style [{role, content}], redacted
  std::string answer;                  // the assistant's content, redacted
  std::string tool_calls_json;         // OpenAI's tool_calls array, redacted; "" when none
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double duration_ms = 0;
  double ttft_ms = 0;
  std::string finish_reason;
  std::string redactions_json = "{}";  // {"cn_resident_id": 2, ...}
};

struct FeedbackRecord {
  std::string response_id;
  std::string key_id;  // who sent it
  int64_t time_ms = 0;
  std::optional<double> rating;  // [-1, 1]: "up" is 1, "down" -1
  std::optional<std::string> correction;
  std::optional<std::string> comment;
  std::string redactions_json = "{}";
};

struct CaptureEntry {
  CaptureRecord record;
  std::optional<FeedbackRecord> feedback;  // the latest
};

enum class RatingFilter { kAny, kUp, kDown, kNone, kRated };

struct CaptureQuery {
  std::string model;  // "" = any
  std::string key;    // a key's id or name; "" = any
  RatingFilter rating = RatingFilter::kAny;
  int64_t since_ms = 0;                                    // inclusive
  int64_t until_ms = std::numeric_limits<int64_t>::max();  // exclusive
  int64_t limit = 0;                                       // 0 = all; else the newest `limit`
  std::vector<std::string> response_ids;                   // empty = any
};

enum class AppendResult { kWritten, kFull };

class CaptureStore {
 public:
  // Opens or creates the file; Error(kInvalidInput, "capture-db") as Database. `max_bytes` 0: no
  // cap.
  explicit CaptureStore(const std::string& path, int64_t max_bytes = 0);

  const std::string& path() const { return db_.path(); }
  // Commits the record; kFull when the cap or the disk refuses it; throws Error for other
  // failures (a locked or unwritable file).
  AppendResult append(const CaptureRecord& record);
  void add_feedback(const FeedbackRecord& feedback);
  // The caller's id of a captured response; nullopt when none has that id.
  std::optional<std::string> owner(const std::string& response_id) const;
  std::optional<CaptureEntry> find(const std::string& response_id) const;
  // Oldest first.
  std::vector<CaptureEntry> query(const CaptureQuery& query) const;
  // Deletes the captures (and their feedback) of these response ids; the captures deleted.
  int64_t remove(const std::vector<std::string>& response_ids);
  // Deletes captures (and their feedback) older than `before_ms`; the captures deleted.
  int64_t prune(int64_t before_ms);
  int64_t size_bytes() const;

 private:
  Database db_;
  int64_t max_bytes_;
};

}  // namespace mmserve::store
