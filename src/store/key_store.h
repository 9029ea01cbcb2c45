// API keys in the database: each has a public id (its recognisable prefix, "mms_k3j9x2ab"), a
// unique name ("sales-team"), what it may do (AccessScopes) and how much (RateLimits). The key
// itself ("mms_k3j9x2ab_" + 32 random base62 characters, from OpenSSL's RAND_bytes) is shown
// once, when created or rotated; only its SHA-256 is stored, and a presented key is checked by
// comparing hashes in constant time (CRYPTO_memcmp).
//
// Every verify() reads the database, so a key revoked or rotated by `mmserve keys` in another
// process is refused from the next request on.
//
// Threading: thread-safe (the database's lock). Borrows the Database, which must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/access.h"
#include "store/database.h"

namespace mmserve::store {

inline constexpr std::string_view kKeyPrefix = "mms_";

struct KeyRecord {
  std::string id;    // "mms_" + 8 characters [a-z0-9]: public, in logs and the audit table
  std::string name;  // unique, chosen by the operator
  AccessScopes scopes;
  RateLimits limits;
  int64_t created_ms = 0;
  int64_t rotated_ms = 0;  // 0: never
  int64_t revoked_ms = 0;  // 0: active
  bool active() const { return revoked_ms == 0; }
};

struct NewKey {
  KeyRecord record;
  std::string key;  // the secret to give the client; not stored, not shown again
};

// The public id of a presented key ("mms_k3j9x2ab" of "mms_k3j9x2ab_..."), or "" when the token
// does not have that shape.
std::string key_id_of(std::string_view token);

// Why verify() refused a token.
enum class KeyRefusal { kNone, kMalformed, kUnknown, kWrongSecret, kRevoked };

class KeyStore {
 public:
  explicit KeyStore(const Database& db) : db_(db) {}

  // Error(kInvalidInput, "name") for an empty name, one with characters outside
  // [A-Za-z0-9._-] or longer than 64, or one already used (revoked keys' names included).
  NewKey create(const std::string& name, const AccessScopes& scopes, const RateLimits& limits);
  // Every key, active and revoked, oldest first.
  std::vector<KeyRecord> list() const;
  // By id or name; nullopt when neither matches.
  std::optional<KeyRecord> find(std::string_view id_or_name) const;
  // Marks it revoked (idempotent: an already revoked key keeps its first revocation time).
  // Error(kNotFound, "key") when no key has that id or name.
  KeyRecord revoke(std::string_view id_or_name);
  // A new secret for the same id, name, scopes and limits (its usage history stays); the old
  // secret stops working at once. Error(kNotFound, "key"); Error(kInvalidInput, "key") when
  // revoked.
  NewKey rotate(std::string_view id_or_name);
  // New scopes and limits for an existing key. Error(kNotFound, "key").
  KeyRecord update(std::string_view id_or_name, const AccessScopes& scopes,
                   const RateLimits& limits);
  // The active key `token` is; nullopt with the reason otherwise.
  std::optional<KeyRecord> verify(std::string_view token, KeyRefusal* refusal = nullptr) const;
  // Keys not revoked.
  int64_t active_count() const;

 private:
  const Database& db_;
};

}  // namespace mmserve::store
