#include "stages/privacy/audit_log.h"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mmserve::stages {
namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// "cn_mobile:2,email:1" as {"cn_mobile": 2, "email": 1}.
nlohmann::json counts_json(const std::string& counts) {
  nlohmann::json out = nlohmann::json::object();
  size_t start = 0;
  while (start < counts.size()) {
    const size_t comma = std::min(counts.find(',', start), counts.size());
    const std::string item = counts.substr(start, comma - start);
    if (const size_t colon = item.find(':'); colon != std::string::npos) {
      out[item.substr(0, colon)] = std::stoi(item.substr(colon + 1));
    }
    start = comma + 1;
  }
  return out;
}

}  // namespace

AuditLog::AuditLog(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "a");  // O_APPEND: every write goes to the end
  if (file == nullptr) {
    throw Error(ErrorCode::kInvalidInput, "cannot open the audit log " + path + " for appending",
                "--audit-log");
  }
  MutexLock lock(mutex_);
  file_ = file;
}

AuditLog::~AuditLog() {
  MutexLock lock(mutex_);
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

void AuditLog::write(const AuditRecord& r) noexcept {
  try {
    const nlohmann::json line = {{"time", utc_now()},
                                 {"request_id", r.request_id},
                                 {"caller", r.caller},
                                 {"task", r.task},
                                 {"model", r.model},
                                 {"data_class", r.data_class},
                                 {"findings", counts_json(r.findings)},
                                 {"rule", r.rule},
                                 {"route", r.route},
                                 {"route_reason", r.route_reason},
                                 {"upstream_status", r.upstream_status},
                                 {"outcome", r.outcome}};
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    MutexLock lock(mutex_);
    std::fwrite(text.data(), 1, text.size(), file_);
    std::fflush(file_);
  } catch (...) {  // the request goes on; a lost audit line is the price of not crashing
  }
}

}  // namespace mmserve::stages
