// Authentication and the per-shard key cache (see auth.hpp).
#include "auth.hpp"

#include "credentials.hpp"
#include "job_reads.hpp"
#include "keys.hpp"

#include <cstdlib>

namespace sluice::api {
namespace {

HttpResult unauthenticated(std::string message, std::string_view challenge) {
    HttpResult r = error_result(errors::UNAUTHENTICATED, std::move(message));
    r.headers.emplace_back("WWW-Authenticate", std::string(challenge));
    return r;
}

std::optional<std::string_view> bearer_of(std::string_view header) {
    constexpr std::string_view scheme = "Bearer ";
    if (header.size() <= scheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(header[i])) != std::tolower(static_cast<unsigned char>(scheme[i])))
            return std::nullopt;
    return header.substr(scheme.size());
}

// The record of the key whose id is `id`, from the cache or Redis; nullopt inside: no such
// key; outer nullopt: Redis did not answer.
awaitable<std::optional<KeyCache::Entry>> find_key(ShardContext& ctx, const std::string& id) {
    const auto now = std::chrono::steady_clock::now();
    if (const KeyCache::Entry* cached = ctx.key_cache.fresh(id, now)) co_return *cached;
    std::vector<std::string> command =
        args("HMGET", keys::api_key(id), "hash", "tenant", "role", "submits_per_s", "requests_per_s");
    RedisValue v = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    if (!v.ok() || v.elements.size() != 5) co_return std::nullopt;
    KeyCache::Entry entry;
    entry.read_at = now;
    const auto role = parse_role(v.elements[2].str);
    if (v.elements[0].kind == RedisValue::Kind::STRING && role && role != Role::JOB_READER) {
        entry.hash = std::move(v.elements[0].str);
        const auto rate = [&v](std::size_t i) {
            return static_cast<std::uint32_t>(std::strtoul(v.elements[i].str.c_str(), nullptr, 10));
        };
        entry.record = KeyRecord{std::move(v.elements[1].str), *role, Rates{rate(3), rate(4)}};
    }
    ctx.key_cache.remember(id, entry);
    co_return entry;
}

awaitable<std::variant<Principal, HttpResult>> by_key(ShardContext& ctx, std::string_view key) {
    const std::string hash = key_hash(key);
    if (!ctx.config.admin_key_hash.empty() && same_secret(hash, ctx.config.admin_key_hash))
        co_return Principal{Role::ADMIN, "default", "admin", Rates{}};
    const auto id = key_id_of(key);
    if (!id) co_return unauthenticated("the API key is not valid", "Bearer error=\"invalid_token\"");
    const std::string key_id(*id);
    const auto entry = co_await find_key(ctx, key_id);
    if (!entry) co_return redis_unavailable();
    if (!entry->record || !same_secret(hash, entry->hash))
        co_return unauthenticated("the API key is not valid (unknown or revoked)", "Bearer error=\"invalid_token\"");
    co_return Principal{entry->record->role, entry->record->tenant, key_id, entry->record->rates};
}

}  // namespace

std::optional<Role> parse_role(std::string_view name) {
    if (name == "admin") return Role::ADMIN;
    if (name == "member") return Role::MEMBER;
    return std::nullopt;
}

std::string_view role_name(Role role) {
    switch (role) {
        case Role::ADMIN: return "admin";
        case Role::MEMBER: return "member";
        case Role::JOB_READER: return "reader";
    }
    return "";
}

awaitable<std::variant<Principal, HttpResult>> authenticate(ShardContext& ctx, const HttpRequest& request,
                                                            const Target& target, Access access,
                                                            std::string_view token_job) {
    if (access == Access::PUBLIC) co_return Principal{};
    std::variant<Principal, HttpResult> who;
    if (const auto header = request.find(boost::beast::http::field::authorization); header != request.end()) {
        const auto key = bearer_of({header->value().data(), header->value().size()});
        if (!key) co_return unauthenticated("Authorization must be 'Bearer <API key>'", "Bearer");
        who = co_await by_key(ctx, *key);
    } else if (const auto token = target.query.find("token"); token != target.query.end()) {
        if (access != Access::READER || !token_opens(ctx.config.token_secret, token->second, token_job, wall_now_ms() / 1000))
            co_return unauthenticated("the read token is not valid for this request, or has expired",
                                      "Bearer error=\"invalid_token\"");
        who = Principal{Role::JOB_READER, "", "", Rates{}};
    } else if (!ctx.config.auth_required) {
        who = Principal{};
    } else {
        co_return unauthenticated("this endpoint needs an API key: 'Authorization: Bearer <key>'", "Bearer");
    }
    auto* principal = std::get_if<Principal>(&who);
    if (principal == nullptr) co_return who;
    if (access == Access::ADMIN && principal->role != Role::ADMIN)
        co_return error_result(errors::FORBIDDEN, "this endpoint needs an admin key");
    if (principal->rates.submits_per_s == 0) principal->rates.submits_per_s = ctx.config.default_rates.submits_per_s;
    if (principal->rates.requests_per_s == 0) principal->rates.requests_per_s = ctx.config.default_rates.requests_per_s;
    co_return who;
}

}  // namespace sluice::api
