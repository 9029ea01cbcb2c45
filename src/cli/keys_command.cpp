// `mmserve keys create|list|revoke|rotate|update`: the API keys in the server's database
// (store/key_store.h). A key is printed once, when created or rotated; the database keeps only
// its SHA-256, and nothing here ever prints a hash. The database is the file `serve --db` uses
// (--db, else $MMSERVE_DB); a running server sees every change from its next request on.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/arg_parser.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/human_units.h"
#include "store/audit_store.h"
#include "store/database.h"
#include "store/key_store.h"

namespace mmserve::cli {
namespace {

constexpr const char* kUsage = R"(usage: mmserve keys SUBCOMMAND [options]
API keys in the server's database (the file `mmserve serve --db` uses). A running server sees
every change from its next request on.

  create NAME [scopes] [limits] [--json]   make a key; prints it once (only its hash is kept)
  list [--json]                            every key: state, scopes, limits, recent use
  revoke ID|NAME                           refuse the key from now on (its name stays taken)
  rotate ID|NAME [--json]                  a new secret for the same key; the old one stops
  update ID|NAME [scopes] [limits]         change the options given, keep the others

Every subcommand takes --db FILE (default: $MMSERVE_DB).
`mmserve keys SUBCOMMAND --help` describes each.
)";

constexpr const char* kScopesUsage = R"(
scopes (what the key may do; a list left out allows all of its kind):
  --tasks T,..           text-gen, image-caption, speech-transcribe, embed
  --models M,..          model names or aliases
  --endpoints P,..       paths, each starting with '/'; a trailing '*' matches any rest
                         ("/v1/audio/*")
  --cloud                may be routed to the cloud endpoint (default: local only)
  --admin                may use the admin endpoints (model load/unload) and see all usage
  --capture              its completed calls are captured for the dataset (serve --capture
                         opt-in; personal data replaced by placeholders first)
limits (0 or left out: no limit):
  --rpm N                requests per minute
  --tpm N                tokens (prompt + completion) per minute
  --audio-seconds-per-day N
  --concurrency N        requests at once
)";

constexpr const char* kCreateUsage = R"(usage: mmserve keys create NAME [options]
Makes a key and prints it once on standard output; only its SHA-256 is stored, so keep it now.
NAME: unique (revoked keys' names included), up to 64 of A-Z a-z 0-9 . _ -
  --db FILE              the database (default: $MMSERVE_DB)
  --json                 print {"id", "name", "key", "scopes", "limits", "created"}
)";

constexpr const char* kListUsage = R"(usage: mmserve keys list [--db FILE] [--json]
Every key, oldest first: id, name, state (active/revoked), created (UTC), last used and
requests in the last 24 hours (from the audit log), scopes and limits. Never a key or its hash.
  --db FILE              the database (default: $MMSERVE_DB)
  --json                 a JSON array
)";

constexpr const char* kRevokeUsage = R"(usage: mmserve keys revoke ID|NAME [--db FILE]
Refuses the key from the next request on. Its name stays taken; its audit rows stay.
)";

constexpr const char* kRotateUsage = R"(usage: mmserve keys rotate ID|NAME [--db FILE] [--json]
A new secret for the same key (same id, name, scopes, limits and usage history), printed once;
the old secret is refused from the next request on.
  --json                 print {"id", "name", "key", "scopes", "limits", "created", "rotated"}
)";

constexpr const char* kUpdateUsage = R"(usage: mmserve keys update ID|NAME [options]
Changes only the scopes and limits given; the others stay. A list given as "" allows all again;
a limit given as 0 removes it.
  --no-cloud             local only again
  --no-admin             no admin endpoints again
  --no-capture           its calls are no longer captured
  --db FILE              the database (default: $MMSERVE_DB)
)";

const std::set<std::string> kTasks = {"text-gen", "image-caption", "speech-transcribe", "embed"};

const std::vector<std::string> kScopeOptions = {"--tasks", "--models", "--endpoints"};
const std::vector<std::string> kLimitOptions = {"--rpm", "--tpm", "--audio-seconds-per-day",
                                                "--concurrency"};

nlohmann::ordered_json iso_or_null(int64_t ms) {
  return ms == 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(iso_utc(ms));
}

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');) {
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) {
      out.push_back(item.substr(first, last - first + 1));
    }
  }
  return out;
}

std::vector<std::string> tasks_option(const std::string& value) {
  auto tasks = split_list(value);
  for (const auto& t : tasks) {
    if (!kTasks.contains(t)) {
      throw Error(
          ErrorCode::kInvalidInput,
          "--tasks: unknown task '" + t + "' (text-gen, image-caption, speech-transcribe or embed)",
          "--tasks");
    }
  }
  return tasks;
}

std::vector<std::string> endpoints_option(const std::string& value) {
  auto endpoints = split_list(value);
  for (const auto& e : endpoints) {
    if (e.front() != '/') {
      throw Error(ErrorCode::kInvalidInput,
                  "--endpoints: '" + e + "' is not a path (paths start with '/')", "--endpoints");
    }
  }
  return endpoints;
}

int64_t count_option(const ArgParser& p, const std::string& name, int64_t fallback) {
  if (!p.has(name)) {
    return fallback;
  }
  const std::string s = p.get(name);
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < 0) {
    throw Error(ErrorCode::kInvalidInput, name + " wants a non-negative integer, got '" + s + "'",
                name);
  }
  return value;
}

// --X sets `value`, --no-X clears it, neither leaves it.
void toggle(const ArgParser& p, const std::string& on, const std::string& off, bool& value) {
  if (p.flag(on) && p.flag(off)) {
    throw Error(ErrorCode::kInvalidInput, "give " + on + " or " + off + ", not both", on);
  }
  if (p.flag(on)) {
    value = true;
  } else if (p.flag(off)) {
    value = false;
  }
}

// The scopes and limits the options give, over the values passed in (kept where an option is
// absent).
void apply_options(const ArgParser& p, AccessScopes& scopes, RateLimits& limits) {
  if (p.has("--tasks")) {
    scopes.tasks = tasks_option(p.get("--tasks"));
  }
  if (p.has("--models")) {
    scopes.models = split_list(p.get("--models"));
  }
  if (p.has("--endpoints")) {
    scopes.endpoints = endpoints_option(p.get("--endpoints"));
  }
  toggle(p, "--cloud", "--no-cloud", scopes.cloud);
  toggle(p, "--admin", "--no-admin", scopes.admin);
  toggle(p, "--capture", "--no-capture", scopes.capture);
  limits.requests_per_minute = count_option(p, "--rpm", limits.requests_per_minute);
  limits.tokens_per_minute = count_option(p, "--tpm", limits.tokens_per_minute);
  limits.audio_seconds_per_day =
      count_option(p, "--audio-seconds-per-day", limits.audio_seconds_per_day);
  limits.concurrent_requests = count_option(p, "--concurrency", limits.concurrent_requests);
}

// "tasks=text-gen models=a,b cloud admin", or "all" when nothing narrows the key (local only).
std::string scopes_text(const AccessScopes& s) {
  std::string out;
  const auto add = [&out](const std::string& part) {
    if (!out.empty()) {
      out.push_back(' ');
    }
    out += part;
  };
  if (!s.tasks.empty()) {
    add("tasks=" + comma_joined(s.tasks));
  }
  if (!s.models.empty()) {
    add("models=" + comma_joined(s.models));
  }
  if (!s.endpoints.empty()) {
    add("endpoints=" + comma_joined(s.endpoints));
  }
  if (s.cloud) {
    add("cloud");
  }
  if (s.admin) {
    add("admin");
  }
  if (s.capture) {
    add("capture");
  }
  return out.empty() ? "all" : out;
}

std::string limits_text(const RateLimits& l) {
  std::string out;
  const auto add = [&out](const char* name, int64_t value) {
    if (value > 0) {
      if (!out.empty()) {
        out.push_back(' ');
      }
      out.append(name).append("=").append(std::to_string(value));
    }
  };
  add("rpm", l.requests_per_minute);
  add("tpm", l.tokens_per_minute);
  add("audio-seconds-per-day", l.audio_seconds_per_day);
  add("concurrency", l.concurrent_requests);
  return out.empty() ? "none" : out;
}

nlohmann::ordered_json scopes_json(const AccessScopes& s) {
  return {{"tasks", s.tasks}, {"models", s.models}, {"endpoints", s.endpoints},
          {"cloud", s.cloud}, {"admin", s.admin},   {"capture", s.capture}};
}

nlohmann::ordered_json limits_json(const RateLimits& l) {
  return {{"rpm", l.requests_per_minute},
          {"tpm", l.tokens_per_minute},
          {"audio_seconds_per_day", l.audio_seconds_per_day},
          {"concurrency", l.concurrent_requests}};
}

// A record's public fields (never the hash).
nlohmann::ordered_json record_json(const store::KeyRecord& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"state", r.active() ? "active" : "revoked"},
          {"scopes", scopes_json(r.scopes)},
          {"limits", limits_json(r.limits)},
          {"created", iso_utc(r.created_ms)},
          {"rotated", iso_or_null(r.rotated_ms)},
          {"revoked", iso_or_null(r.revoked_ms)}};
}

std::string dump(const nlohmann::ordered_json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string label(const store::KeyRecord& r) {
  return "key '" + r.name + "' (" + r.id + ")";
}

// The new secret: on stdout (alone on its line, or in the JSON), the notice on stderr.
void print_new_key(const store::NewKey& k, bool json, const std::string& what) {
  if (json) {
    nlohmann::ordered_json out = {{"id", k.record.id},
                                  {"name", k.record.name},
                                  {"key", k.key},
                                  {"scopes", scopes_json(k.record.scopes)},
                                  {"limits", limits_json(k.record.limits)},
                                  {"created", iso_utc(k.record.created_ms)}};
    if (k.record.rotated_ms != 0) {
      out["rotated"] = iso_utc(k.record.rotated_ms);
    }
    std::cout << dump(out) << "\n";
  } else {
    std::cout << k.key << "\n";
  }
  std::cout.flush();
  std::fprintf(stderr, "mmserve: %s %s; this is the only time the key is shown\n",
               label(k.record).c_str(), what.c_str());
}

std::string database_path(const ArgParser& p) {
  std::string path = store::database_path_from(p.get("--db"));
  if (path.empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "which database? give --db FILE or set $MMSERVE_DB (the file serve --db uses)",
                "--db");
  }
  return path;
}

std::string one_positional(const ArgParser& p, const char* what, const char* usage) {
  if (p.positionals().size() != 1) {
    throw Error(ErrorCode::kInvalidInput, std::string("give one ") + what + "\n" + usage, what);
  }
  return p.positionals()[0];
}

// The parser for one subcommand: --db and --help always, plus its own.
ArgParser parser(std::vector<std::string> valued, std::vector<std::string> flags) {
  valued.emplace_back("--db");
  flags.emplace_back("-h|--help");
  return {std::move(valued), std::move(flags)};
}

std::vector<std::string> scope_and_limit_options() {
  std::vector<std::string> out = kScopeOptions;
  out.insert(out.end(), kLimitOptions.begin(), kLimitOptions.end());
  return out;
}

bool help(const ArgParser& p, const std::string& usage) {
  if (p.flag("--help")) {
    std::fputs(usage.c_str(), stdout);
    return true;
  }
  return false;
}

int create(const std::vector<std::string>& args) {
  ArgParser p = parser(scope_and_limit_options(), {"--cloud", "--admin", "--capture", "--json"});
  p.parse(args);
  if (help(p, std::string(kCreateUsage) + kScopesUsage)) {
    return 0;
  }
  const std::string name = one_positional(p, "NAME", kCreateUsage);
  AccessScopes scopes;
  RateLimits limits;
  apply_options(p, scopes, limits);
  store::Database db(database_path(p));
  const store::NewKey key = store::KeyStore(db).create(name, scopes, limits);
  print_new_key(key, p.flag("--json"), "created");
  return 0;
}

int list(const std::vector<std::string>& args) {
  ArgParser p = parser({}, {"--json"});
  p.parse(args);
  if (help(p, kListUsage)) {
    return 0;
  }
  if (!p.positionals().empty()) {
    throw Error(ErrorCode::kInvalidInput,
                "keys list takes no arguments, got '" + p.positionals()[0] + "'");
  }
  store::Database db(database_path(p));
  const auto keys = store::KeyStore(db).list();
  const store::AuditStore audit(db);
  const int64_t now = store::unix_ms_now();
  std::map<std::string, int64_t> recent;
  for (const auto& u : audit.usage({.since_ms = now - 24LL * 3600 * 1000})) {
    recent[u.key] = u.requests;
  }
  const auto last_used = [&audit](const std::string& id) -> int64_t {
    const auto rows = audit.query({.key = id, .limit = 1});
    return rows.empty() ? 0 : rows.front().time_ms;
  };

  if (p.flag("--json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& k : keys) {
      nlohmann::ordered_json j = record_json(k);
      j["last_used"] = iso_or_null(last_used(k.id));
      j["requests_24h"] = recent[k.id];
      out.push_back(std::move(j));
    }
    std::cout << dump(out, 2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> table = {
      {"ID", "NAME", "STATE", "CREATED", "LAST USED", "REQUESTS 24H", "SCOPES", "LIMITS"}};
  for (const auto& k : keys) {
    const int64_t used = last_used(k.id);
    table.push_back({k.id, k.name, k.active() ? "active" : "revoked", iso_utc(k.created_ms),
                     used == 0 ? "never" : iso_utc(used), std::to_string(recent[k.id]),
                     scopes_text(k.scopes), limits_text(k.limits)});
  }
  std::vector<size_t> widths(table.front().size(), 0);
  for (const auto& row : table) {
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : table) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
    }
    std::cout << line << "\n";
  }
  if (keys.empty()) {
    std::fprintf(stderr, "mmserve: no keys in %s yet (mmserve keys create NAME)\n",
                 db.path().c_str());
  }
  return 0;
}

int revoke(const std::vector<std::string>& args) {
  ArgParser p = parser({}, {});
  p.parse(args);
  if (help(p, kRevokeUsage)) {
    return 0;
  }
  const std::string which = one_positional(p, "ID|NAME", kRevokeUsage);
  store::Database db(database_path(p));
  store::KeyStore keys(db);
  const auto before = keys.find(which);
  const store::KeyRecord r = keys.revoke(which);
  if (before && !before->active()) {
    std::cout << label(r) << " was already revoked (" << iso_utc(r.revoked_ms) << ")\n";
  } else {
    std::cout << label(r) << " revoked; it is refused from the next request on\n";
  }
  return 0;
}

int rotate(const std::vector<std::string>& args) {
  ArgParser p = parser({}, {"--json"});
  p.parse(args);
  if (help(p, kRotateUsage)) {
    return 0;
  }
  const std::string which = one_positional(p, "ID|NAME", kRotateUsage);
  store::Database db(database_path(p));
  const store::NewKey key = store::KeyStore(db).rotate(which);
  print_new_key(key, p.flag("--json"), "rotated (the old key is refused from now on)");
  return 0;
}

int update(const std::vector<std::string>& args) {
  ArgParser p = parser(scope_and_limit_options(), {"--cloud", "--admin", "--no-cloud", "--no-admin",
                                                   "--capture", "--no-capture"});
  p.parse(args);
  const std::string usage = std::string(kUpdateUsage) + kScopesUsage;
  if (help(p, usage)) {
    return 0;
  }
  const std::string which = one_positional(p, "ID|NAME", usage.c_str());
  bool any = p.flag("--cloud") || p.flag("--admin") || p.flag("--no-cloud") ||
             p.flag("--no-admin") || p.flag("--capture") || p.flag("--no-capture");
  for (const auto& option : scope_and_limit_options()) {
    any = any || p.has(option);
  }
  if (!any) {
    throw Error(ErrorCode::kInvalidInput,
                "nothing to update: give the scopes or limits to change (mmserve keys update "
                "--help)",
                "ID|NAME");
  }
  store::Database db(database_path(p));
  store::KeyStore keys(db);
  auto current = keys.find(which);
  if (!current) {
    throw Error(ErrorCode::kNotFound, "no key has the id or name '" + which + "'", "key");
  }
  AccessScopes scopes = current->scopes;
  RateLimits limits = current->limits;
  apply_options(p, scopes, limits);
  const store::KeyRecord r = keys.update(current->id, scopes, limits);
  std::cout << label(r) << " updated: scopes " << scopes_text(r.scopes) << "; limits "
            << limits_text(r.limits) << "\n";
  return 0;
}

}  // namespace

int run_keys(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string& sub = args[0];
  if (sub == "-h" || sub == "--help" || sub == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "create") {
    return create(rest);
  }
  if (sub == "list") {
    return list(rest);
  }
  if (sub == "revoke") {
    return revoke(rest);
  }
  if (sub == "rotate") {
    return rotate(rest);
  }
  if (sub == "update") {
    return update(rest);
  }
  std::fprintf(stderr, "mmserve: unknown keys subcommand '%s'\n\n%s", sub.c_str(), kUsage);
  return 2;
}

}  // namespace mmserve::cli
