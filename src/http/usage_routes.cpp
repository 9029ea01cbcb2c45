// GET /v1/usage: what a key used, from the audit log, and where it stands against its quotas.
//
//   ?start_time=UNIX_S&end_time=UNIX_S  the window (default: the last 24 hours), as OpenAI's
//                                       usage API takes it
//   ?key=ID_OR_NAME                     admin keys only: one key (default: every key)
//
// A key sees its own usage; an admin key every key's. Without a database (serve --db) there is
// no record to read: 404 saying so.
#include <charconv>
#include <map>

#include "core/error.h"
#include "http/json_fields.h"
#include "http/json_output.h"
#include "http/routes.h"

namespace mmserve::http {
namespace {

constexpr int64_t kDefaultWindowMs = 86'400'000;

int64_t seconds_param(const ApiRequest& req, std::string_view name, int64_t fallback_ms) {
  const auto text = req.query_param(name);
  if (!text) {
    return fallback_ms;
  }
  int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), seconds);
  if (ec != std::errc() || end != text->data() + text->size() || seconds < 0 ||
      seconds > 100'000'000'000) {
    throw Error(
        ErrorCode::kInvalidInput,
        std::string(name) + " must be a time in Unix seconds, not '" + std::string(*text) + "'",
        std::string(name));
  }
  return seconds * 1000;
}

Json limits_json(const RateLimits& l) {
  return {{"requests_per_minute", l.requests_per_minute},
          {"tokens_per_minute", l.tokens_per_minute},
          {"audio_seconds_per_day", l.audio_seconds_per_day},
          {"concurrent_requests", l.concurrent_requests}};
}

Json remaining_json(const pipeline::RateLimitStatus& s) {
  Json out = Json::object();
  if (s.limit_requests > 0) {
    out["requests"] = s.remaining_requests;
  }
  if (s.limit_tokens > 0) {
    out["tokens"] = s.remaining_tokens;
  }
  if (s.limit_audio_seconds > 0) {
    out["audio_seconds"] = s.remaining_audio_seconds;
  }
  return out;
}

// The window and the key(s) a caller asks about: its own key unless it is an admin.
store::AuditQuery usage_query(const ApiRequest& req, const pipeline::Caller& caller,
                              const store::KeyStore* keys) {
  const int64_t now = store::unix_ms_now();
  store::AuditQuery query{.since_ms = seconds_param(req, "start_time", now - kDefaultWindowMs),
                          .until_ms = seconds_param(req, "end_time", now + 1)};
  if (const auto key = req.query_param("key")) {
    if (!caller.admin) {
      throw Error(ErrorCode::kForbidden, "only an admin key reads other keys' usage", "key");
    }
    const auto named = keys != nullptr ? keys->find(*key) : std::nullopt;
    query.key = named ? named->id : std::string(*key);
  } else if (!caller.admin) {
    query.key = caller.id;
  }
  return query;
}

Json key_usage_json(const store::UsageTotals& t, const store::KeyRecord* record,
                    const stages::QuotaStage* quotas) {
  Json entry = {{"key", t.key},
                {"requests", t.requests},
                {"refused", t.refused},
                {"prompt_tokens", t.prompt_tokens},
                {"completion_tokens", t.completion_tokens},
                {"audio_seconds", t.audio_seconds}};
  if (record == nullptr) {
    return entry;  // a static key ("api-key", "admin"), or "anonymous"
  }
  entry["name"] = record->name;
  entry["revoked"] = !record->active();
  entry["limits"] = limits_json(record->limits);
  if (quotas != nullptr) {
    if (const auto s = quotas->status(record->id, record->limits)) {
      entry["remaining"] = remaining_json(*s);
    }
  }
  return entry;
}

Json usage_json(const UsageSources& sources, const store::AuditQuery& query) {
  // Every key the window saw and, when every key is asked for, every active one, used or not.
  std::map<std::string, store::UsageTotals> totals;
  for (auto& t : sources.audit->usage(query)) {
    totals[t.key] = t;
  }
  std::map<std::string, store::KeyRecord> records;
  for (auto& k : sources.keys != nullptr ? sources.keys->list() : std::vector<store::KeyRecord>{}) {
    if (query.key.empty() && k.active()) {
      totals.try_emplace(k.id).first->second.key = k.id;
    }
    if (query.key.empty() || query.key == k.id) {
      records.emplace(k.id, std::move(k));
    }
  }
  if (!query.key.empty()) {
    totals.try_emplace(query.key).first->second.key = query.key;
  }
  Json keys = Json::array();
  for (const auto& [id, t] : totals) {
    const auto it = records.find(id);
    keys.push_back(key_usage_json(t, it != records.end() ? &it->second : nullptr, sources.quotas));
  }
  return {{"object", "usage"},
          {"start_time", query.since_ms / 1000},
          {"end_time", query.until_ms / 1000},
          {"keys", std::move(keys)}};
}

}  // namespace

std::vector<Route> usage_routes(const Services& services) {
  const UsageSources& sources = services.usage;
  return {{"GET", "/v1/usage", [&sources](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             if (sources.audit == nullptr) {
               throw Error(ErrorCode::kNotFound,
                           "usage is recorded only on a server with a database (serve --db FILE)");
             }
             write_json(res, usage_json(sources, usage_query(req, ex.call.caller, sources.keys)));
           }}};
}

}  // namespace mmserve::http
