// The secrets a client shows (README.md, Security, "API keys and tenants"): API keys and
// job-scoped read tokens. Pure (no Redis, no sockets): making them, telling their parts apart
// and checking them in constant time. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::api {

// An API key is "sk_{id}_{secret}": the id (16 hex digits) names the key in Redis, in the
// admin listing and in every job it submits; the secret (64 hex digits, 256 random bits) is
// shown once, at creation. Only the key's SHA-256 is stored.
struct NewKey {
    std::string id;
    std::string key;   // the whole key, given to the client once
    std::string hash;  // key_hash(key)
};

NewKey make_key();

// The id part of a key of the right shape; nullopt for anything else.
std::optional<std::string_view> key_id_of(std::string_view key);

// The SHA-256 of a key, as 64 hex digits.
std::string key_hash(std::string_view key);

// Whether two strings are equal, in a time that depends on their lengths only.
bool same_secret(std::string_view a, std::string_view b);

// Random bytes as hex (a key's parts, a process's token secret).
std::string random_hex(std::size_t bytes);

// A read token opens one job's events and result and nothing else, until it expires:
// "{expires_s}.{HMAC-SHA256(secret, job_id + '.' + expires_s) as hex}". It goes in a URL
// (`?token=`), because EventSource cannot send headers.
std::string read_token(std::string_view secret, std::string_view job_id, std::int64_t expires_s);

// Whether `token` is a read token for `job_id` that has not expired at `now_s`.
bool token_opens(std::string_view secret, std::string_view token, std::string_view job_id, std::int64_t now_s);

}  // namespace sluice::api
