// Who a request acts as (README.md, Security, "API keys and tenants"): an API key's tenant and
// role, a read token's one job, or, with SLUICE_AUTH=off, the open development mode (tenant
// "default", admin rights). Keys are read from Redis and kept for KeyCache::TTL per shard, so
// a revoked key stops working on every api instance within that time.
// Loop thread only, like the ShardContext it reads through.
#pragma once

#include "config.hpp"
#include "http_wire.hpp"
#include "loop.hpp"
#include "read_cache.hpp"
#include "request.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

namespace sluice::api {

struct ShardContext;

enum class Role { ADMIN, MEMBER, JOB_READER };

// The role's name in key records and the admin API ("admin", "member"); nullopt for another.
std::optional<Role> parse_role(std::string_view name);
std::string_view role_name(Role role);

struct Principal {
    Role role = Role::ADMIN;
    std::string tenant = "default";
    std::string key_id;  // the key that authenticated the request; "" in open mode or with a token
    Rates rates;         // the key's, or the defaults (SLUICE_KEY_*_PER_S) where it has none

    // Whether this principal may see a job of `job_tenant`. Any other job is, to it, not found:
    // a 404 never tells it that the job exists. A read token was checked against the job id.
    bool may_see(std::string_view job_tenant) const {
        return role != Role::MEMBER || job_tenant == tenant;
    }
};

// Who may use a route.
enum class Access {
    PUBLIC,  // anybody: health and readiness
    MEMBER,  // any key (a member sees its tenant's jobs, an admin every tenant's)
    READER,  // any key, or a read token for the job in the path (events, result)
    ADMIN,   // admin keys only
};

// A key as stored (sluice:apikey:{id}), without its hash.
struct KeyRecord {
    std::string tenant;
    Role role = Role::MEMBER;
    Rates rates;
};

// A key as one shard read it: found (record) or not.
struct KeyEntry {
    std::optional<KeyRecord> record;
    std::string hash;
    std::chrono::steady_clock::time_point read_at;
};

// The keys one shard has read lately, by key id.
using KeyCache = ReadCache<KeyEntry>;

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// Who `request` acts as, for a route of `access` where a read token must open job `token_job`
// (the job the path or the query names); or the answer that refuses it: 401 unauthenticated (with WWW-Authenticate), 403 forbidden (a member key on
// an admin route), 503 when Redis does not answer.
awaitable<std::variant<Principal, HttpResult>> authenticate(ShardContext& ctx, const HttpRequest& request,
                                                            const Target& target, Access access,
                                                            std::string_view token_job);

}  // namespace sluice::api
