// The capture writer: a bounded in-memory queue of completed calls, drained by one thread that
// redacts each (redaction.h) and writes it to the capture store. The raw text lives only here,
// in memory, until its record is redacted; what reaches the store, the metrics and the log is
// redacted or counts.
//
// Never slows or fails a request: enqueue() takes a lock for a push and returns; a full queue
// drops the record (reason "queue_full"), a store over its cap or a full disk drops it at write
// time ("store_full"), any other failure of the store (locked, unwritable) drops it ("error").
// Each drop is counted (counters(), mmserve_capture_dropped_total{reason}); written records
// count in mmserve_capture_records_total; mmserve_capture_queue_depth is the queue's length.
//
// Retention: with retention_days > 0, captures older than that are deleted by the writer's
// thread at start-up and then once an hour.
//
// Shutdown: the destructor writes what is queued for at most kDrainTimeout, then drops the rest.
//
// Threading: every method is thread-safe. Borrows the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_annotations.h"
#include "engine/chat_format.h"
#include "privacy/detectors.h"
#include "store/capture_store.h"

namespace mmserve::stages {

// One completed call as it came, unredacted: the record's metadata (its text fields are filled
// by the writer), the conversation and the generated answer.
struct PendingCapture {
  store::CaptureRecord record;
  struct Turn {
    std::string role;
    std::string content;  // text parts joined; images as "<image>"
    std::vector<engine::ToolCall> tool_calls;
    std::string tool_call_id;
    std::string name;
  };
  std::vector<Turn> messages;
  std::string answer_text;                                 // the generated text, unparsed
  std::shared_ptr<const engine::ChatOutputParser> parser;  // null: the text is the answer
  std::vector<engine::ToolSpec> tools;                     // the functions it was offered
};

// The scan options redaction uses (the privacy policy's keywords and patterns in force, names
// and addresses on); called on the writer thread.
using ScanOptionsSource = std::function<privacy::ScanOptions()>;

// The record to store: `pending`'s texts redacted, with the counts of what was replaced.
store::CaptureRecord redacted_record(PendingCapture pending, const privacy::ScanOptions& scan);

struct CaptureCounters {
  int64_t written = 0;
  int64_t dropped_queue_full = 0;
  int64_t dropped_store_full = 0;
  int64_t dropped_error = 0;
  int64_t queued = 0;
};

class CaptureWriter {
 public:
  static constexpr size_t kDefaultCapacity = 1024;
  static constexpr std::chrono::seconds kDrainTimeout{3};

  CaptureWriter(store::CaptureStore& store, ScanOptionsSource scan,
                size_t capacity = kDefaultCapacity, int retention_days = 0);
  ~CaptureWriter();
  CaptureWriter(const CaptureWriter&) = delete;
  CaptureWriter& operator=(const CaptureWriter&) = delete;

  // Queues it; false when the queue is full (dropped and counted). Never throws.
  bool enqueue(PendingCapture capture) noexcept;
  // The caller id of a queued capture with this response id (not yet in the store).
  std::optional<std::string> pending_owner(const std::string& response_id) const;
  // Waits until everything queued before the call is written or dropped.
  void flush();
  CaptureCounters counters() const;
  store::CaptureStore& store() const { return store_; }
  // The scan options redaction uses now (for the feedback's texts).
  privacy::ScanOptions scan_options() const { return scan_ ? scan_() : privacy::ScanOptions{}; }

 private:
  void run();
  void write_one(PendingCapture capture) noexcept;
  void prune() noexcept;

  store::CaptureStore& store_;
  ScanOptionsSource scan_;
  const size_t capacity_;
  const int64_t retention_ms_;
  mutable Mutex mutex_;
  CondVar wake_;
  CondVar idle_;
  std::deque<PendingCapture> queue_ GUARDED_BY(mutex_);
  std::map<std::string, std::string> pending_ GUARDED_BY(mutex_);  // response id -> caller id
  bool busy_ GUARDED_BY(mutex_) = false;
  bool stop_ GUARDED_BY(mutex_) = false;
  std::chrono::steady_clock::time_point drain_until_ GUARDED_BY(mutex_);
  CaptureCounters counters_ GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace mmserve::stages
