#include "store/key_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <sstream>

#include "core/error.h"

namespace mmserve::store {
namespace {

constexpr size_t kIdChars = 8;       // after "mms_": [a-z0-9]
constexpr size_t kSecretChars = 32;  // after the id and '_': base62
constexpr size_t kIdLength = kKeyPrefix.size() + kIdChars;
constexpr size_t kKeyLength = kIdLength + 1 + kSecretChars;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kHashLength = 32;  // SHA-256
constexpr int kIdAttempts = 16;

constexpr std::string_view kIdAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// The columns every record is read from, in this order.
constexpr const char* kColumns =
    "id, name, tasks, models, endpoints, cloud, admin, rpm, tpm, audio_seconds_per_day, "
    "concurrency, created_ms, rotated_ms, revoked_ms, capture";

bool in(std::string_view alphabet, char c) {
  return alphabet.find(c) != std::string_view::npos;
}

// `count` characters drawn uniformly from `alphabet` (RAND_bytes; bytes at or above the largest
// multiple of the alphabet's size are dropped, so there is no modulo bias).
std::string random_chars(std::string_view alphabet, size_t count) {
  const size_t n = alphabet.size();
  const size_t accept_below = 256 - (256 % n);
  std::string out;
  out.reserve(count);
  std::array<unsigned char, 64> buffer{};
  while (out.size() < count) {
    if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
      throw Error(ErrorCode::kInternal, "cannot make a key: OpenSSL's RAND_bytes failed");
    }
    for (const unsigned char b : buffer) {
      if (b < accept_below && out.size() < count) {
        out.push_back(alphabet[b % n]);
      }
    }
  }
  OPENSSL_cleanse(buffer.data(), buffer.size());
  return out;
}

std::string sha256(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != kHashLength) {
    throw Error(ErrorCode::kInternal, "cannot hash a key: OpenSSL's EVP_Digest failed");
  }
  return {reinterpret_cast<const char*>(digest.data()), size};
}

// An SQL blob literal (X'..'): the hash is bound this way because Statement binds text only.
std::string blob_literal(std::string_view bytes) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out = "X'";
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  out.push_back('\'');
  return out;
}

// Binds the nine columns tasks, models, endpoints, cloud, admin, rpm, tpm,
// audio_seconds_per_day, concurrency, from parameter `first` on.
void bind_access(Statement& s, int first, const AccessScopes& scopes, const RateLimits& limits) {
  s.bind(first, comma_joined(scopes.tasks))
      .bind(first + 1, comma_joined(scopes.models))
      .bind(first + 2, comma_joined(scopes.endpoints))
      .bind(first + 3, int64_t{scopes.cloud ? 1 : 0})
      .bind(first + 4, int64_t{scopes.admin ? 1 : 0})
      .bind(first + 5, limits.requests_per_minute)
      .bind(first + 6, limits.tokens_per_minute)
      .bind(first + 7, limits.audio_seconds_per_day)
      .bind(first + 8, limits.concurrent_requests);
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');) {
    if (!item.empty()) {
      out.push_back(item);
    }
  }
  return out;
}

void check_name(const std::string& name) {
  if (name.empty()) {
    throw Error(ErrorCode::kInvalidInput, "a key needs a name", "name");
  }
  if (name.size() > kMaxNameLength) {
    throw Error(
        ErrorCode::kInvalidInput,
        "key name '" + name + "' is longer than " + std::to_string(kMaxNameLength) + " characters",
        "name");
  }
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      throw Error(ErrorCode::kInvalidInput,
                  "key name '" + name + "' may use only letters, digits, '.', '_' and '-'", "name");
    }
  }
  // Reserved, so that an id or name is never ambiguous (find(), `mmserve audit --key`).
  if (name.starts_with(kKeyPrefix)) {
    throw Error(
        ErrorCode::kInvalidInput,
        "key name '" + name + "' may not start with '" + std::string(kKeyPrefix) + "' (key ids do)",
        "name");
  }
  if (name == "api-key" || name == "admin" || name == "anonymous") {
    throw Error(ErrorCode::kInvalidInput,
                "key name '" + name +
                    "' is reserved (the audit log's name for callers without "
                    "a stored key)",
                "name");
  }
}

// Lists are stored comma-separated: an item may be neither empty nor contain a comma.
void check_list(const std::vector<std::string>& items, const char* field) {
  for (const auto& item : items) {
    if (item.empty() || item.find(',') != std::string::npos) {
      throw Error(ErrorCode::kInvalidInput,
                  std::string(field) + ": '" + item + "' is empty or contains a comma", field);
    }
  }
}

void check(const AccessScopes& scopes, const RateLimits& limits) {
  check_list(scopes.tasks, "tasks");
  check_list(scopes.models, "models");
  check_list(scopes.endpoints, "endpoints");
  if (limits.requests_per_minute < 0 || limits.tokens_per_minute < 0 ||
      limits.audio_seconds_per_day < 0 || limits.concurrent_requests < 0) {
    throw Error(ErrorCode::kInvalidInput, "rate limits may not be negative", "limits");
  }
}

KeyRecord read_record(const Statement& s, int first = 0) {
  KeyRecord r;
  r.id = s.text(first + 0);
  r.name = s.text(first + 1);
  r.scopes.tasks = split(s.text(first + 2));
  r.scopes.models = split(s.text(first + 3));
  r.scopes.endpoints = split(s.text(first + 4));
  r.scopes.cloud = s.int64(first + 5) != 0;
  r.scopes.admin = s.int64(first + 6) != 0;
  r.limits.requests_per_minute = s.int64(first + 7);
  r.limits.tokens_per_minute = s.int64(first + 8);
  r.limits.audio_seconds_per_day = s.int64(first + 9);
  r.limits.concurrent_requests = s.int64(first + 10);
  r.created_ms = s.int64(first + 11);
  r.rotated_ms = s.int64(first + 12);
  r.revoked_ms = s.int64(first + 13);
  r.scopes.capture = s.int64(first + 14) != 0;
  return r;
}

// By id, else by name (names may not look like ids, so at most one matches). Caller holds the
// lock.
std::optional<KeyRecord> find_locked(const Database& db, std::string_view id_or_name) {
  Statement s(db, std::string("SELECT ") + kColumns +
                      " FROM keys WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1");
  s.bind(1, id_or_name);
  if (!s.step()) {
    return std::nullopt;
  }
  return read_record(s);
}

KeyRecord find_or_throw(const Database& db, std::string_view id_or_name) {
  auto found = find_locked(db, id_or_name);
  if (!found) {
    throw Error(ErrorCode::kNotFound, "no key has the id or name '" + std::string(id_or_name) + "'",
                "key");
  }
  return *std::move(found);
}

bool id_taken(const Database& db, const std::string& id) {
  Statement s(db, "SELECT 1 FROM keys WHERE id = ?1");
  s.bind(1, id);
  return s.step();
}

std::string secret_for(const std::string& id) {
  return id + "_" + random_chars(kBase62, kSecretChars);
}

}  // namespace

std::string key_id_of(std::string_view token) {
  if (token.size() != kKeyLength || !token.starts_with(kKeyPrefix) || token[kIdLength] != '_') {
    return {};
  }
  for (size_t i = kKeyPrefix.size(); i < kIdLength; ++i) {
    if (!in(kIdAlphabet, token[i])) {
      return {};
    }
  }
  for (size_t i = kIdLength + 1; i < kKeyLength; ++i) {
    if (!in(kBase62, token[i])) {
      return {};
    }
  }
  return std::string(token.substr(0, kIdLength));
}

NewKey KeyStore::create(const std::string& name, const AccessScopes& scopes,
                        const RateLimits& limits) {
  auto lock = db_.lock();
  check_name(name);
  check(scopes, limits);
  Transaction tx(db_);
  {
    Statement s(db_, "SELECT revoked_ms FROM keys WHERE name = ?1");
    s.bind(1, name);
    if (s.step()) {
      throw Error(ErrorCode::kInvalidInput,
                  "a key named '" + name + "' already exists" +
                      (s.int64(0) != 0 ? " (revoked; names are not reused)" : ""),
                  "name");
    }
  }
  std::string id;
  for (int attempt = 0; attempt < kIdAttempts && id.empty(); ++attempt) {
    std::string candidate = std::string(kKeyPrefix) + random_chars(kIdAlphabet, kIdChars);
    if (!id_taken(db_, candidate)) {
      id = std::move(candidate);
    }
  }
  if (id.empty()) {
    throw Error(ErrorCode::kInternal,
                "cannot make a key: no free id after " + std::to_string(kIdAttempts) + " attempts");
  }
  NewKey out;
  out.key = secret_for(id);
  KeyRecord& r = out.record;
  r.id = id;
  r.name = name;
  r.scopes = scopes;
  r.limits = limits;
  r.created_ms = unix_ms_now();
  Statement insert(db_,
                   "INSERT INTO keys (id, name, hash, tasks, models, endpoints, cloud, admin, rpm, "
                   "tpm, audio_seconds_per_day, concurrency, created_ms, rotated_ms, revoked_ms, "
                   "capture) VALUES (?1, ?2, " +
                       blob_literal(sha256(out.key)) +
                       ", ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 0, ?13)");
  insert.bind(1, r.id).bind(2, r.name);
  bind_access(insert, 3, scopes, limits);
  insert.bind(12, r.created_ms).bind(13, int64_t{scopes.capture ? 1 : 0}).run();
  tx.commit();
  return out;
}

std::vector<KeyRecord> KeyStore::list() const {
  auto lock = db_.lock();
  Statement s(db_, std::string("SELECT ") + kColumns + " FROM keys ORDER BY created_ms, rowid");
  std::vector<KeyRecord> out;
  while (s.step()) {
    out.push_back(read_record(s));
  }
  return out;
}

std::optional<KeyRecord> KeyStore::find(std::string_view id_or_name) const {
  auto lock = db_.lock();
  return find_locked(db_, id_or_name);
}

KeyRecord KeyStore::revoke(std::string_view id_or_name) {
  auto lock = db_.lock();
  Transaction tx(db_);
  KeyRecord r = find_or_throw(db_, id_or_name);
  if (r.active()) {
    r.revoked_ms = unix_ms_now();
    Statement s(db_, "UPDATE keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms = 0");
    s.bind(1, r.revoked_ms).bind(2, r.id).run();
  }
  tx.commit();
  return r;
}

NewKey KeyStore::rotate(std::string_view id_or_name) {
  auto lock = db_.lock();
  Transaction tx(db_);
  NewKey out;
  out.record = find_or_throw(db_, id_or_name);
  KeyRecord& r = out.record;
  if (!r.active()) {
    throw Error(ErrorCode::kInvalidInput,
                "key '" + r.name + "' (" + r.id + ") is revoked; create a new one instead", "key");
  }
  out.key = secret_for(r.id);
  r.rotated_ms = unix_ms_now();
  Statement s(db_, "UPDATE keys SET hash = " + blob_literal(sha256(out.key)) +
                       ", rotated_ms = ?1 WHERE id = ?2");
  s.bind(1, r.rotated_ms).bind(2, r.id).run();
  tx.commit();
  return out;
}

KeyRecord KeyStore::update(std::string_view id_or_name, const AccessScopes& scopes,
                           const RateLimits& limits) {
  auto lock = db_.lock();
  check(scopes, limits);
  Transaction tx(db_);
  KeyRecord r = find_or_throw(db_, id_or_name);
  r.scopes = scopes;
  r.limits = limits;
  Statement s(db_,
              "UPDATE keys SET tasks = ?1, models = ?2, endpoints = ?3, cloud = ?4, admin = ?5, "
              "rpm = ?6, tpm = ?7, audio_seconds_per_day = ?8, concurrency = ?9, capture = ?11 "
              "WHERE id = ?10");
  bind_access(s, 1, scopes, limits);
  s.bind(10, r.id).bind(11, int64_t{scopes.capture ? 1 : 0}).run();
  tx.commit();
  return r;
}

std::optional<KeyRecord> KeyStore::verify(std::string_view token, KeyRefusal* refusal) const {
  auto lock = db_.lock();
  KeyRefusal ignored = KeyRefusal::kNone;
  KeyRefusal& why = refusal != nullptr ? *refusal : ignored;
  why = KeyRefusal::kNone;
  const std::string id = key_id_of(token);
  if (id.empty()) {
    why = KeyRefusal::kMalformed;
    return std::nullopt;
  }
  const std::string presented = sha256(token);
  static const std::string kLookup =
      std::string("SELECT hash, ") + kColumns + " FROM keys WHERE id = ?1";
  Statement& s = db_.cached(kLookup);
  // Reset however this ends: a cached SELECT left mid-step would pin its snapshot of the WAL.
  struct Reset {
    Statement& s;
    ~Reset() { s.reset(); }
  } reset{s};
  s.bind(1, id);
  if (!s.step()) {
    why = KeyRefusal::kUnknown;
    return std::nullopt;
  }
  const std::string stored = s.text(0);
  if (stored.size() != presented.size() ||
      CRYPTO_memcmp(stored.data(), presented.data(), presented.size()) != 0) {
    why = KeyRefusal::kWrongSecret;
    return std::nullopt;
  }
  KeyRecord r = read_record(s, 1);
  if (!r.active()) {
    why = KeyRefusal::kRevoked;
    return std::nullopt;
  }
  return r;
}

int64_t KeyStore::active_count() const {
  auto lock = db_.lock();
  Statement s(db_, "SELECT count(*) FROM keys WHERE revoked_ms = 0");
  return s.step() ? s.int64(0) : 0;
}

}  // namespace mmserve::store
