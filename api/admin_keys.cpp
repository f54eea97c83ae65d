// Key management handlers (see admin_keys.hpp).
#include "admin_keys.hpp"

#include "credentials.hpp"
#include "job_json.hpp"
#include "job_reads.hpp"
#include "json_writer.hpp"
#include "keys.hpp"
#include "names.hpp"

namespace sluice::api {
namespace {

// A key request is three short fields; anything longer is not one.
constexpr std::size_t MAX_KEY_REQUEST_BYTES = 4096;

// Text without control characters (C0, DEL, C1), in any script: `text` came out of a JSON string,
// so it is UTF-8, where the C1 controls U+0080..U+009F are 0xC2 0x80..0x9F.
bool printable(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f) return false;
        if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0) return false;
    }
    return true;
}

void key_members(JsonWriter& w, std::string_view id, std::string_view tenant, std::string_view role,
                 std::string_view name, std::int64_t created_ms, const Rates& rates) {
    w.key("id").string(id).key("tenant").string(tenant).key("role").string(role).key("name").string(name);
    w.key("created_at").string(iso8601_ms(created_ms));
    w.key("rate_limit").begin_object().key("submits_per_s").integer(rates.submits_per_s);
    w.key("requests_per_s").integer(rates.requests_per_s).end_object();
}

std::optional<ApiError> parse_rates(const json& value, Rates& rates) {
    if (!value.is_object()) return api_error(errors::INVALID_REQUEST, "rate_limit must be an object");
    for (const auto& [field, rate] : value.items()) {
        std::uint32_t* slot = field == "submits_per_s"    ? &rates.submits_per_s
                              : field == "requests_per_s" ? &rates.requests_per_s
                                                          : nullptr;
        if (slot == nullptr)
            return api_error(errors::INVALID_REQUEST, "rate_limit." + field + " is not a limit (submits_per_s, requests_per_s)");
        if (!rate.is_number_integer() || rate.get<std::int64_t>() < 0 || rate.get<std::int64_t>() > MAX_RATE)
            return api_error(errors::INVALID_REQUEST,
                             "rate_limit." + field + " must be an integer in 0.." + std::to_string(MAX_RATE));
        *slot = static_cast<std::uint32_t>(rate.get<std::int64_t>());
    }
    return std::nullopt;
}

}  // namespace

Checked<KeyRequest> parse_key_request(std::string_view body) {
    if (body.size() > MAX_KEY_REQUEST_BYTES)
        return api_error(errors::INVALID_REQUEST, "a key request is at most " + std::to_string(MAX_KEY_REQUEST_BYTES) + " bytes");
    const json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object())
        return api_error(errors::INVALID_JSON, "request body must be a JSON object");
    KeyRequest out;
    for (const auto& [field, value] : doc.items()) {
        if (field == "rate_limit") {
            if (auto error = parse_rates(value, out.rates)) return *error;
            continue;
        }
        if (field != "tenant" && field != "role" && field != "name")
            return api_error(errors::INVALID_REQUEST, field + " is not a key field (tenant, role, name, rate_limit)");
        if (!value.is_string()) return api_error(errors::INVALID_REQUEST, field + " must be a string");
    }
    for (const char* field : {"tenant", "role", "name"})
        if (!doc.contains(field)) return api_error(errors::INVALID_REQUEST, std::string(field) + " is required");
    out.tenant = doc["tenant"].get<std::string>();
    if (!valid_tenant(out.tenant)) return api_error(errors::INVALID_REQUEST, "tenant must match [A-Za-z0-9_.-]{1,64}");
    const auto role = parse_role(doc["role"].get<std::string>());
    if (!role) return api_error(errors::INVALID_REQUEST, "role must be 'admin' or 'member'");
    out.role = *role;
    out.name = doc["name"].get<std::string>();
    if (out.name.empty() || out.name.size() > MAX_KEY_NAME || !printable(out.name))
        return api_error(errors::INVALID_REQUEST, "name must be 1.." + std::to_string(MAX_KEY_NAME) + " bytes of printable text");
    return out;
}

// POST /v1/admin/keys -> 201 with the key, shown this once.
awaitable<Outcome> create_key(ShardContext& ctx, const RouteRequest& req) {
    auto parsed = parse_key_request(req.http.body());
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    const KeyRequest& wanted = std::get<KeyRequest>(parsed);
    std::vector<std::string> count = args("SCARD", std::string(keys::API_KEYS));
    const RedisValue held = co_await ctx.redis.command(std::move(count), REDIS_TIMEOUT);
    if (!held.ok()) co_return redis_unavailable();
    if (held.integer >= MAX_KEYS)
        co_return error_result(errors::INVALID_REQUEST, "there are " + std::to_string(MAX_KEYS) +
                                                            " keys already, the most Sluice keeps: revoke some first");
    const NewKey made = make_key();
    const std::int64_t created = wall_now_ms();
    std::vector<std::vector<std::string>> commands;
    commands.push_back(args("HSET", keys::api_key(made.id), "hash", made.hash, "tenant", wanted.tenant, "role",
                            std::string(role_name(wanted.role)), "name", wanted.name, "created_ms",
                            std::to_string(created), "submits_per_s", std::to_string(wanted.rates.submits_per_s),
                            "requests_per_s", std::to_string(wanted.rates.requests_per_s)));
    commands.push_back(args("SADD", std::string(keys::API_KEYS), made.id));
    const auto stored = co_await transaction(ctx, std::move(commands));
    if (!stored) co_return redis_unavailable();
    JsonWriter w;
    w.begin_object();
    key_members(w, made.id, wanted.tenant, role_name(wanted.role), wanted.name, created, wanted.rates);
    w.key("key").string(made.key).end_object();
    HttpResult r;
    r.status = 201;
    r.body = w.take();
    co_return r;
}

// GET /v1/admin/keys: every key, without secrets (at most MAX_KEYS of a few hundred bytes).
awaitable<Outcome> list_keys(ShardContext& ctx, const RouteRequest&) {
    std::vector<std::string> members = args("SMEMBERS", std::string(keys::API_KEYS));
    const RedisValue ids = co_await ctx.redis.command(std::move(members), REDIS_TIMEOUT);
    if (!ids.ok()) co_return redis_unavailable();
    std::vector<std::vector<std::string>> reads;
    for (const auto& id : ids.elements)
        reads.push_back(args("HMGET", keys::api_key(id.str), "tenant", "role", "name", "created_ms", "submits_per_s",
                             "requests_per_s"));
    std::optional<std::vector<RedisValue>> records = std::vector<RedisValue>{};
    if (!reads.empty()) records = co_await transaction(ctx, std::move(reads));
    if (!records) co_return redis_unavailable();
    JsonWriter w;
    w.begin_object().key("keys").begin_array();
    for (std::size_t i = 0; i < records->size(); ++i) {
        const auto& f = (*records)[i].elements;
        if (f.size() != 6 || f[0].kind != RedisValue::Kind::STRING) continue;  // revoked meanwhile
        const Rates rates{static_cast<std::uint32_t>(std::atoll(f[4].str.c_str())),
                          static_cast<std::uint32_t>(std::atoll(f[5].str.c_str()))};
        w.begin_object();
        key_members(w, ids.elements[i].str, f[0].str, f[1].str, f[2].str, std::atoll(f[3].str.c_str()), rates);
        w.end_object();
    }
    w.end_array().end_object();
    HttpResult r;
    r.body = w.take();
    co_return r;
}

// DELETE /v1/admin/keys/{id}
awaitable<Outcome> revoke_key(ShardContext& ctx, const RouteRequest& req) {
    const std::string& id = req.job_id;
    std::vector<std::vector<std::string>> commands;
    commands.push_back(args("DEL", keys::api_key(id)));
    commands.push_back(args("SREM", std::string(keys::API_KEYS), id));
    const auto removed = co_await transaction(ctx, std::move(commands));
    if (!removed) co_return redis_unavailable();
    if ((*removed)[0].integer == 0) co_return error_result(errors::KEY_NOT_FOUND, "no API key with id '" + id + "'");
    JsonWriter w;
    w.begin_object().key("id").string(id).key("revoked").raw("true").end_object();
    HttpResult r;
    r.body = w.take();
    co_return r;
}

}  // namespace sluice::api
