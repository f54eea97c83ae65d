// Key management over HTTP, admin keys only (README.md, Security, "API keys and tenants"):
// POST /v1/admin/keys makes a key and shows it once, GET /v1/admin/keys lists them without
// secrets, DELETE /v1/admin/keys/{id} revokes one (every api instance stops taking it within
// KeyCache::TTL). Keys live in Redis (keys::api_key, keys::API_KEYS). Loop thread only.
#pragma once

#include "routes.hpp"

namespace sluice::api {

// The body of POST /v1/admin/keys: {"tenant", "role", "name"} required, and "rate_limit":
// {"submits_per_s", "requests_per_s"} (each 0..MAX_RATE, 0 or absent: the default) optional.
struct KeyRequest {
    std::string tenant;
    Role role = Role::MEMBER;
    std::string name;
    Rates rates;
};
// Parses and checks it: 400 invalid_json, 422 invalid_request naming the field.
Checked<KeyRequest> parse_key_request(std::string_view body);

// The longest key name, in bytes; the most keys a deployment holds (so the listing is bounded).
inline constexpr std::size_t MAX_KEY_NAME = 128;
inline constexpr std::int64_t MAX_KEYS = 10000;
inline constexpr std::int64_t MAX_RATE = 1000000;

awaitable<Outcome> create_key(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> list_keys(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> revoke_key(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
