// `mmserve audit`: the audit log in the server's database (store/audit_store.h) as CSV (RFC 4180
// quoting, a header line first) or JSON lines, filtered by time window and key. Rows hold no
// request content, so neither does the output.
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "store/audit_store.h"
#include "store/database.h"
#include "store/key_store.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve audit [options]
Prints the audit log (one row per API request, refused ones included; never its content),
oldest first.

  --db FILE              the database (default: $MMSERVE_DB; the file serve --db uses)
  --since T              rows at or after T
  --until T              rows before T
  --key ID|NAME          one key's rows (a key's id or name; or api-key, admin, anonymous)
  --format csv|json      CSV with a header line (default), or one JSON object per line
  --limit N              only the newest N rows (still oldest first)

T: an ISO 8601 UTC date or date-time (2026-12-01, 2026-12-01T10:00, 2026-12-01T10:00:00Z),
Unix seconds (1764583200), or an age: 30m, 12h, 7d (that long ago; also s, w).
Fields: time (UTC, milliseconds), request_id, key, method, path, task, model, route, status,
error_type, prompt_tokens, completion_tokens, audio_seconds, duration_ms, client, charged.
)";

constexpr const char* kHeader =
    "time,request_id,key,method,path,task,model,route,status,error_type,prompt_tokens,"
    "completion_tokens,audio_seconds,duration_ms,client,charged\n";

// The digits of s[pos, pos + n) as a number; false when they are not all digits.
bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) {
    return false;
  }
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i])) == 0) {
      return false;
    }
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z] as Unix milliseconds, UTC; nullopt when it is not one.
std::optional<int64_t> parse_iso(std::string_view s) {
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) {
    s.remove_suffix(1);
  }
  int year = 0;
  int month = 0;
  int day = 0;
  if (s.size() < 10 || !digits(s, 0, 4, year) || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(year),
                                         std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) {
    return std::nullopt;
  }
  int hour = 0;
  int minute = 0;
  int second = 0;
  int millis = 0;
  size_t pos = 10;
  if (pos < s.size()) {
    if ((s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') || !digits(s, pos + 1, 2, hour) ||
        s.size() < pos + 6 || s[pos + 3] != ':' || !digits(s, pos + 4, 2, minute)) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < s.size()) {
      if (s[pos] != ':' || !digits(s, pos + 1, 2, second)) {
        return std::nullopt;
      }
      pos += 3;
    }
    if (pos < s.size()) {
      // A fraction: up to milliseconds are kept.
      if (s[pos] != '.' || pos + 1 == s.size()) {
        return std::nullopt;
      }
      int scale = 100;
      for (size_t i = pos + 1; i < s.size(); ++i) {
        if (std::isdigit(static_cast<unsigned char>(s[i])) == 0) {
          return std::nullopt;
        }
        millis += (s[i] - '0') * scale;
        scale /= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) {
      return std::nullopt;
    }
  }
  const auto days = std::chrono::sys_days(date).time_since_epoch().count();
  return ((static_cast<int64_t>(days) * 24 + hour) * 60 + minute) * 60'000LL + second * 1000LL +
         millis;
}

// T (see the usage) as Unix milliseconds; Error naming `option` when it is none of the forms.
int64_t parse_time(const std::string& value, const std::string& option, int64_t now_ms) {
  const auto bad = [&]() {
    return Error(ErrorCode::kInvalidInput,
                 option + " wants an ISO 8601 UTC date or date-time (2026-12-01T10:00:00Z), " +
                     "Unix seconds or an age (30m, 12h, 7d); got '" + value + "'",
                 option);
  };
  if (value.empty()) {
    throw bad();
  }
  int64_t number = 0;
  const char* begin = value.data();
  const char* end = value.data() + value.size();
  const auto [stop, ec] = std::from_chars(begin, end, number);
  if (ec == std::errc() && stop != begin && number >= 0) {
    constexpr int64_t kMaxSeconds = 253'402'300'799LL;  // 9999-12-31T23:59:59Z
    if (stop == end) {
      if (number > kMaxSeconds) {
        throw bad();
      }
      return number * 1000;  // Unix seconds
    }
    if (stop + 1 == end) {
      int64_t unit = 0;
      switch (*stop) {
        case 's': unit = 1000; break;
        case 'm': unit = 60'000; break;
        case 'h': unit = 3'600'000; break;
        case 'd': unit = 86'400'000; break;
        case 'w': unit = 7 * 86'400'000LL; break;
        default: break;
      }
      if (unit != 0 && number <= kMaxSeconds * 1000 / unit) {
        return now_ms - number * unit;  // that long ago
      }
    }
  }
  if (const auto iso = parse_iso(value)) {
    return *iso;
  }
  throw bad();
}

std::string iso_utc_ms(int64_t ms) {
  int64_t seconds = ms / 1000;
  int64_t millis = ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 40> buffer{};
  const size_t n = std::strftime(buffer.data(), buffer.size(), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buffer.data() + n, buffer.size() - n, ".%03dZ", static_cast<int>(millis));
  return buffer.data();
}

// RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled.
void csv_field(std::string& out, std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += value;
    return;
  }
  out.push_back('"');
  for (const char c : value) {
    if (c == '"') {
      out.push_back('"');
    }
    out.push_back(c);
  }
  out.push_back('"');
}

// The shortest text that reads back as the same double.
std::string number(double value) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return ec == std::errc() ? std::string(buffer.data(), end) : std::string("0");
}

std::string csv_row(const store::AuditRow& r) {
  std::string out;
  const auto field = [&out](std::string_view value) {
    if (!out.empty()) {
      out.push_back(',');
    }
    csv_field(out, value);
  };
  field(iso_utc_ms(r.time_ms));
  field(r.request_id);
  field(r.key);
  field(r.method);
  field(r.path);
  field(r.task);
  field(r.model);
  field(r.route);
  field(std::to_string(r.status));
  field(r.error_type);
  field(std::to_string(r.prompt_tokens));
  field(std::to_string(r.completion_tokens));
  field(number(r.audio_seconds));
  field(number(r.duration_ms));
  field(r.client);
  field(r.charged ? "true" : "false");
  out.push_back('\n');
  return out;
}

std::string json_row(const store::AuditRow& r) {
  const nlohmann::ordered_json j = {{"time", iso_utc_ms(r.time_ms)},
                                    {"request_id", r.request_id},
                                    {"key", r.key},
                                    {"method", r.method},
                                    {"path", r.path},
                                    {"task", r.task},
                                    {"model", r.model},
                                    {"route", r.route},
                                    {"status", r.status},
                                    {"error_type", r.error_type},
                                    {"prompt_tokens", r.prompt_tokens},
                                    {"completion_tokens", r.completion_tokens},
                                    {"audio_seconds", r.audio_seconds},
                                    {"duration_ms", r.duration_ms},
                                    {"client", r.client},
                                    {"charged", r.charged}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

// A key's id for --key: the callers without a stored key as they are, a stored key's name or id
// as its id, else an id as given (a refused, unknown key's rows carry its id).
std::string key_filter(const store::Database& db, const std::string& value) {
  if (value == "api-key" || value == "admin" || value == "anonymous") {
    return value;
  }
  if (const auto found = store::KeyStore(db).find(value)) {
    return found->id;
  }
  const bool id_shaped =
      value.size() == store::kKeyPrefix.size() + 8 && value.starts_with(store::kKeyPrefix) &&
      value.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789", store::kKeyPrefix.size()) ==
          std::string::npos;
  if (id_shaped) {
    return value;
  }
  throw Error(ErrorCode::kInvalidInput,
              "--key: no key has the id or name '" + value + "' (mmserve keys list)", "--key");
}

}  // namespace

int run_audit(const std::vector<std::string>& args) {
  ArgParser p({"--db", "--since", "--until", "--key", "--format", "--limit"}, {"-h|--help"});
  p.parse(args);
  if (p.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "audit takes no arguments, got '" + p.positionals()[0] + "'\n" + kUsage);
  }
  const int64_t now = store::unix_ms_now();
  store::AuditQuery query;
  if (p.has("--since")) {
    query.since_ms = parse_time(p.get("--since"), "--since", now);
  }
  if (p.has("--until")) {
    query.until_ms = parse_time(p.get("--until"), "--until", now);
  }
  const std::string format = p.get("--format", "csv");
  if (format != "csv" && format != "json") {
    throw Error(ErrorCode::kInvalidInput, "--format wants csv or json, got '" + format + "'",
                "--format");
  }
  if (p.has("--limit")) {
    const std::string s = p.get("--limit");
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), query.limit);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || query.limit < 0) {
      throw Error(ErrorCode::kInvalidInput, "--limit wants a non-negative integer, got '" + s + "'",
                  "--limit");
    }
  }
  const std::string path = store::database_path_from(p.get("--db"));
  if (path.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "which database? give --db FILE or set $MMSERVE_DB (the file serve --db uses)",
                "--db");
  }
  store::Database db(path);
  if (p.has("--key")) {
    query.key = key_filter(db, p.get("--key"));
  }
  const auto rows = store::AuditStore(db).query(query);
  const bool csv = format == "csv";
  if (csv) {
    std::fputs(kHeader, stdout);
  }
  for (const auto& r : rows) {
    const std::string line = csv ? csv_row(r) : json_row(r);
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  if (std::fflush(stdout) != 0) {
    throw Error(ErrorCode::kInternal, "cannot write the audit rows to standard output");
  }
  return 0;
}

}  // namespace mmserve::cli
