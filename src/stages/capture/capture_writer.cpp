#include "stages/capture/capture_writer.h"

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "metrics/server_metrics.h"
#include "stages/capture/redaction.h"

namespace mmserve::stages {
namespace {

using Json = nlohmann::ordered_json;

struct CaptureMetrics {
  metrics::Family<metrics::Counter>& records;
  metrics::Family<metrics::Counter>& dropped;
  metrics::Family<metrics::Gauge>& queue;
};

// Registered once per process (the registry refuses a name twice).
CaptureMetrics& capture_metrics() {
  static CaptureMetrics m{
      metrics::server_metrics().registry().counter(
          "mmserve_capture_records_total",
          "Completed calls written to the capture store, redacted (serve --capture-db)"),
      metrics::server_metrics().registry().counter(
          "mmserve_capture_dropped_total",
          "Captured calls dropped, by reason: queue_full, store_full (cap or disk), error",
          {"reason"}),
      metrics::server_metrics().registry().gauge("mmserve_capture_queue_depth",
                                                 "Captured calls waiting for the capture writer")};
  return m;
}

Json tool_calls_json(const std::vector<engine::ToolCall>& calls, Redactor& redactor) {
  Json out = Json::array();
  for (const auto& c : calls) {
    out.push_back({{"id", c.id},
                   {"type", "function"},
                   {"function", {{"name", c.name}, {"arguments", redactor.redact(c.arguments)}}}});
  }
  return out;
}

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

store::CaptureRecord redacted_record(PendingCapture p, const privacy::ScanOptions& scan) {
  Redactor redactor(scan);
  store::CaptureRecord r = std::move(p.record);
  Json messages = Json::array();
  for (const auto& m : p.messages) {
    Json j = {{"role", m.role}, {"content", redactor.redact(m.content)}};
    if (!m.tool_calls.empty()) j["tool_calls"] = tool_calls_json(m.tool_calls, redactor);
    if (!m.tool_call_id.empty()) j["tool_call_id"] = m.tool_call_id;
    if (!m.name.empty()) j["name"] = m.name;
    messages.push_back(std::move(j));
  }
  r.messages_json = dump(messages);
  engine::ParsedMessage answer;
  if (p.parser) {
    try {
      answer = p.parser->parse(p.answer_text);
    } catch (const std::exception&) {
      answer.content = p.answer_text;
    }
  } else {
    answer.content = p.answer_text;
  }
  r.answer = redactor.redact(answer.content);
  r.tool_calls_json =
      answer.tool_calls.empty() ? "" : dump(tool_calls_json(answer.tool_calls, redactor));
  if (!answer.tool_calls.empty()) r.finish_reason = "tool_calls";
  if (!p.tools.empty()) {
    // The functions offered, as OpenAI's fine-tuning format takes them ("tools").
    Json params = Json::parse(r.parameters_json, nullptr, false);
    if (!params.is_object()) params = Json::object();
    Json tools = Json::array();
    for (const auto& t : p.tools) {
      Json schema = Json::parse(t.parameters, nullptr, false);
      tools.push_back({{"type", "function"},
                       {"function",
                        {{"name", t.name},
                         {"description", redactor.redact(t.description)},
                         {"parameters", schema.is_discarded() ? Json::object() : schema}}}});
    }
    params["tools"] = std::move(tools);
    r.parameters_json = dump(params);
  }
  Json counts = Json::object();
  for (const auto& [type, n] : redactor.counts()) counts[type] = n;
  r.redactions_json = dump(counts);
  return r;
}

CaptureWriter::CaptureWriter(store::CaptureStore& store, ScanOptionsSource scan, size_t capacity,
                             int retention_days)
    : store_(store),
      scan_(std::move(scan)),
      capacity_(capacity),
      retention_ms_(static_cast<int64_t>(retention_days) * 86'400'000) {
  capture_metrics();
  thread_ = std::thread([this] { run(); });
}

CaptureWriter::~CaptureWriter() {
  {
    MutexLock lock(mutex_);
    stop_ = true;
    drain_until_ = std::chrono::steady_clock::now() + kDrainTimeout;
  }
  wake_.notify_all();
  thread_.join();
}

bool CaptureWriter::enqueue(PendingCapture capture) noexcept {
  try {
    MutexLock lock(mutex_);
    if (stop_ || queue_.size() >= capacity_) {
      ++counters_.dropped_queue_full;
      capture_metrics().dropped.labels({"queue_full"}).inc();
      return false;
    }
    pending_[capture.record.response_id] = capture.record.key_id;
    queue_.push_back(std::move(capture));
    counters_.queued = static_cast<int64_t>(queue_.size());
    capture_metrics().queue.labels({}).set(static_cast<double>(queue_.size()));
  } catch (const std::exception&) {
    return false;  // out of memory: dropped, as a full queue
  }
  wake_.notify_one();
  return true;
}

std::optional<std::string> CaptureWriter::pending_owner(const std::string& response_id) const {
  MutexLock lock(mutex_);
  const auto it = pending_.find(response_id);
  if (it == pending_.end()) return std::nullopt;
  return it->second;
}

void CaptureWriter::flush() {
  MutexLock lock(mutex_);
  while (!queue_.empty() || busy_) {
    idle_.wait(mutex_);
  }
}

CaptureCounters CaptureWriter::counters() const {
  MutexLock lock(mutex_);
  return counters_;
}

void CaptureWriter::run() {
  using Clock = std::chrono::steady_clock;
  auto next_prune = Clock::now();
  MutexLock lock(mutex_);
  while (true) {
    if (retention_ms_ > 0 && !stop_ && Clock::now() >= next_prune) {
      next_prune = Clock::now() + std::chrono::hours(1);
      MutexUnlock unlock(mutex_);
      prune();
      continue;
    }
    if (queue_.empty()) {
      if (stop_) break;
      if (retention_ms_ > 0) {
        wake_.wait_until(mutex_, next_prune);
      } else {
        wake_.wait(mutex_);
      }
      continue;
    }
    if (stop_ && Clock::now() > drain_until_) {
      queue_.clear();  // shutting down: what is left is not written
      pending_.clear();
      break;
    }
    PendingCapture next = std::move(queue_.front());
    queue_.pop_front();
    counters_.queued = static_cast<int64_t>(queue_.size());
    capture_metrics().queue.labels({}).set(static_cast<double>(queue_.size()));
    busy_ = true;
    const std::string id = next.record.response_id;
    {
      MutexUnlock unlock(mutex_);
      write_one(std::move(next));
    }
    pending_.erase(id);
    busy_ = false;
    idle_.notify_all();
  }
  busy_ = false;
  idle_.notify_all();
}

void CaptureWriter::prune() noexcept {
  try {
    const int64_t deleted = store_.prune(store::unix_ms_now() - retention_ms_);
    if (deleted > 0) {
      std::fprintf(stderr, "mmserve: capture: %lld records older than %lld days deleted\n",
                   static_cast<long long>(deleted),
                   static_cast<long long>(retention_ms_ / 86'400'000));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mmserve: capture: records not pruned: %s\n", e.what());
  }
}

void CaptureWriter::write_one(PendingCapture capture) noexcept {
  const char* dropped = nullptr;
  try {
    const privacy::ScanOptions scan = scan_ ? scan_() : privacy::ScanOptions{};
    const store::CaptureRecord record = redacted_record(std::move(capture), scan);
    if (store_.append(record) == store::AppendResult::kWritten) {
      capture_metrics().records.labels({}).inc();
      MutexLock lock(mutex_);
      ++counters_.written;
      return;
    }
    dropped = "store_full";
  } catch (const std::exception& e) {
    // The message is SQLite's, never the record's text.
    std::fprintf(stderr, "mmserve: capture: a record was dropped: %s\n", e.what());
    dropped = "error";
  }
  capture_metrics().dropped.labels({dropped}).inc();
  MutexLock lock(mutex_);
  if (std::string_view(dropped) == "store_full") {
    ++counters_.dropped_store_full;
  } else {
    ++counters_.dropped_error;
  }
}

}  // namespace mmserve::stages
