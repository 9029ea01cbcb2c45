// mmserve dataset: review and export what the server captured (serve --capture-db): list, show,
// delete and export the capture store's records (store/capture_store.h, stages/capture/).
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/human_units.h"
#include "stages/capture/capture_export.h"
#include "store/capture_store.h"

namespace mmserve::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kUsage = R"(usage: mmserve dataset SUBCOMMAND [options]
The calls the server captured for fine-tuning (serve --capture-db FILE), personal data already
replaced by placeholders (<CN_ID_1>, <PHONE_1>, ...), with the feedback clients sent.

  list [filters] [--json]                  one line per record, oldest first
  show ID [--json]                         a record with its feedback (ID: its response id)
  delete ID... | [filters] | --all         delete records (and their feedback)
  export --format F -o FILE [filters]      training data, one JSON object per line; F: openai
                                           (fine-tuning chat, with weights), sharegpt, alpaca,
                                           preference (DPO pairs); -o - for standard output

filters:
  --model NAME           the model that answered
  --key ID|NAME          the key that asked
  --rating R             up, down, none (not rated) or rated
  --since YYYY-MM-DD     records from that day on (UTC)
  --until YYYY-MM-DD     records before that day
  --limit N              the newest N
Every subcommand takes --capture-db FILE (default: $MMSERVE_CAPTURE_DB).
)";

int64_t parse_day(const std::string& value, const std::string& option) {
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  char tail = 0;
  if (value.size() != 10 || std::sscanf(value.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) != 3) {
    throw Error(ErrorCode::kInvalidInput, option + " wants a date YYYY-MM-DD, not '" + value + "'",
                option);
  }
  const std::chrono::year_month_day date{std::chrono::year(y), std::chrono::month(m),
                                         std::chrono::day(d)};
  if (!date.ok()) {
    throw Error(ErrorCode::kInvalidInput, option + ": '" + value + "' is not a date", option);
  }
  return static_cast<int64_t>(std::chrono::sys_days(date).time_since_epoch().count()) * 86'400'000;
}

ArgParser parser(std::vector<std::string> valued, std::vector<std::string> flags) {
  valued.insert(valued.end(),
                {"--capture-db", "--model", "--key", "--rating", "--since", "--until", "--limit"});
  flags.emplace_back("-h|--help");
  return ArgParser(std::move(valued), std::move(flags));
}

bool has_filter(const ArgParser& p) {
  for (const char* f : {"--model", "--key", "--rating", "--since", "--until", "--limit"}) {
    if (p.has(f)) return true;
  }
  return false;
}

store::CaptureQuery query_of(const ArgParser& p) {
  store::CaptureQuery q;
  q.model = p.get("--model");
  q.key = p.get("--key");
  if (p.has("--rating")) {
    const std::string r = p.get("--rating");
    if (r == "up") {
      q.rating = store::RatingFilter::kUp;
    } else if (r == "down") {
      q.rating = store::RatingFilter::kDown;
    } else if (r == "none") {
      q.rating = store::RatingFilter::kNone;
    } else if (r == "rated") {
      q.rating = store::RatingFilter::kRated;
    } else {
      throw Error(ErrorCode::kInvalidInput,
                  "--rating must be up, down, none or rated, not '" + r + "'", "--rating");
    }
  }
  if (p.has("--since")) q.since_ms = parse_day(p.get("--since"), "--since");
  if (p.has("--until")) q.until_ms = parse_day(p.get("--until"), "--until");
  if (p.has("--limit")) {
    const int limit = p.get_int("--limit", 0);
    if (limit < 1) {
      throw Error(ErrorCode::kInvalidInput, "--limit must be at least 1", "--limit");
    }
    q.limit = limit;
  }
  return q;
}

store::CaptureStore open_store(const ArgParser& p) {
  const std::string path = store::capture_path_from(p.get("--capture-db"));
  if (path.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "no capture database: give --capture-db FILE or set MMSERVE_CAPTURE_DB",
                "--capture-db");
  }
  return store::CaptureStore(path);
}

Json parsed(const std::string& text, Json fallback) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

std::string rating_text(const store::CaptureEntry& e) {
  if (!e.feedback || !e.feedback->rating) return "-";
  const double r = *e.feedback->rating;
  if (r == 1) return "up";
  if (r == -1) return "down";
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%.2f", r);
  return buf;
}

Json entry_json(const store::CaptureEntry& e) {
  const auto& r = e.record;
  Json j = {{"id", r.response_id},
            {"request_id", r.request_id},
            {"time", iso_utc(r.time_ms)},
            {"model", r.model},
            {"key", r.key_id},
            {"key_name", r.key_name},
            {"endpoint", r.endpoint},
            {"task", r.task},
            {"route", r.route},
            {"parameters", parsed(r.parameters_json, Json::object())},
            {"messages", parsed(r.messages_json, Json::array())},
            {"answer", r.answer},
            {"tool_calls", parsed(r.tool_calls_json, Json(nullptr))},
            {"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"duration_ms", r.duration_ms},
            {"ttft_ms", r.ttft_ms},
            {"finish_reason", r.finish_reason},
            {"redactions", parsed(r.redactions_json, Json::object())},
            {"feedback", nullptr}};
  if (e.feedback) {
    const auto& f = *e.feedback;
    j["feedback"] = {{"time", iso_utc(f.time_ms)},
                     {"key", f.key_id},
                     {"rating", f.rating ? Json(*f.rating) : Json(nullptr)},
                     {"correction", f.correction ? Json(*f.correction) : Json(nullptr)},
                     {"comment", f.comment ? Json(*f.comment) : Json(nullptr)},
                     {"redactions", parsed(f.redactions_json, Json::object())}};
  }
  return j;
}

std::string dump(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// The first line of a text, cut to `width` bytes on a character boundary.
std::string preview(const std::string& text, size_t width) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() <= width) return line;
  size_t cut = width;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return line.substr(0, cut) + "...";
}

std::string last_user(const store::CaptureEntry& e) {
  const Json messages = parsed(e.record.messages_json, Json::array());
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->value("role", "") == "user" && (*it)["content"].is_string()) {
      return (*it)["content"].get<std::string>();
    }
  }
  return "";
}

void no_positionals(const ArgParser& p, const char* command) {
  if (!p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput, std::string("dataset ") + command +
                                              " takes no arguments, got '" + p.positionals()[0] +
                                              "'");
  }
}

int list(const std::vector<std::string>& args) {
  ArgParser p = parser({}, {"--json"});
  p.parse(args);
  if (p.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  no_positionals(p, "list");
  const auto entries = open_store(p).query(query_of(p));
  if (p.flag("--json")) {
    Json out = Json::array();
    for (const auto& e : entries) out.push_back(entry_json(e));
    std::cout << dump(out, 2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> table = {
      {"ID", "TIME", "MODEL", "KEY", "TASK", "TOKENS", "RATING", "PROMPT"}};
  for (const auto& e : entries) {
    const auto& r = e.record;
    table.push_back({r.response_id, iso_utc(r.time_ms), r.model,
                     r.key_name.empty() ? r.key_id : r.key_name, r.task,
                     std::to_string(r.prompt_tokens) + "+" + std::to_string(r.completion_tokens),
                     rating_text(e) + (e.feedback && e.feedback->correction ? " corrected" : ""),
                     preview(last_user(e), 40)});
  }
  std::vector<size_t> widths(table.front().size(), 0);
  for (const auto& row : table) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : table) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
  std::fprintf(stderr, "mmserve: %zu records\n", entries.size());
  return 0;
}

int show(const std::vector<std::string>& args) {
  ArgParser p = parser({}, {"--json"});
  p.parse(args);
  if (p.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (p.positionals().size() != 1) {
    throw Error(ErrorCode::kInvalidInput, "dataset show takes one ID (a response id)", "ID");
  }
  const auto entry = open_store(p).find(p.positionals()[0]);
  if (!entry) {
    throw Error(ErrorCode::kNotFound, "no captured record has the id '" + p.positionals()[0] + "'",
                "ID");
  }
  std::cout << dump(entry_json(*entry), 2) << "\n";
  return 0;
}

int remove(const std::vector<std::string>& args) {
  ArgParser p = parser({}, {"--all"});
  p.parse(args);
  if (p.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const bool by_id = !p.positionals().empty();
  if (by_id && (has_filter(p) || p.flag("--all"))) {
    throw Error(ErrorCode::kInvalidInput, "give IDs or filters (or --all), not both", "ID");
  }
  if (!by_id && !has_filter(p) && !p.flag("--all")) {
    throw Error(ErrorCode::kInvalidInput,
                "dataset delete needs IDs, a filter, or --all to delete every record", "ID");
  }
  store::CaptureStore s = open_store(p);
  std::vector<std::string> ids = p.positionals();
  if (!by_id) {
    for (const auto& e : s.query(query_of(p))) ids.push_back(e.record.response_id);
  }
  const int64_t deleted = s.remove(ids);
  std::cout << "deleted " << deleted << " records\n";
  if (by_id && deleted < static_cast<int64_t>(ids.size())) {
    std::fprintf(stderr, "mmserve: %lld of the ids given were not found\n",
                 static_cast<long long>(static_cast<int64_t>(ids.size()) - deleted));
    return 1;
  }
  return 0;
}

int run_export(const std::vector<std::string>& args) {
  ArgParser p = parser({"--format", "-o|--output"}, {});
  p.parse(args);
  if (p.flag("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  no_positionals(p, "export");
  if (!p.has("--format")) {
    throw Error(ErrorCode::kInvalidInput,
                "dataset export needs --format openai|sharegpt|alpaca|preference", "--format");
  }
  const auto format = stages::parse_export_format(p.get("--format"), "--format");
  if (!p.has("--output")) {
    throw Error(ErrorCode::kInvalidInput, "dataset export needs -o FILE (or -o - for stdout)",
                "--output");
  }
  const auto query = query_of(p);
  const auto entries = open_store(p).query(query);
  const std::string path = p.get("--output");
  stages::ExportReport report;
  if (path == "-") {
    report = stages::export_dataset(entries, format, std::cout);
    std::cout.flush();
  } else {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw Error(ErrorCode::kInvalidInput, "cannot write " + path, "--output");
    }
    report = stages::export_dataset(entries, format, out);
    out.close();
    if (!out) {
      throw Error(ErrorCode::kInternal, "writing " + path + " failed", "--output");
    }
  }
  std::fputs(stages::report_text(report).c_str(), stderr);
  return 0;
}

}  // namespace

int run_dataset(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string sub = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "list") return list(rest);
  if (sub == "show") return show(rest);
  if (sub == "delete") return remove(rest);
  if (sub == "export") return run_export(rest);
  throw Error(ErrorCode::kInvalidInput,
              "unknown dataset subcommand '" + sub + "' (list, show, delete, export)",
              "SUBCOMMAND");
}

}  // namespace mmserve::cli
