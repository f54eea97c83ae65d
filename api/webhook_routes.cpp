// Webhook handlers (see webhook_routes.hpp).
#include "webhook_routes.hpp"

#include "job_reads.hpp"
#include "json_writer.hpp"
#include "keys.hpp"
#include "loop.hpp"
#include "webhook_options.hpp"

#include <algorithm>

namespace sluice::api {
namespace {

// An endpoint request is a URL of at most webhooks::MAX_URL_BYTES and a few event names.
constexpr std::size_t MAX_WEBHOOK_REQUEST_BYTES = webhooks::MAX_URL_BYTES + 1024;

// Adds an endpoint unless the tenant holds `limit` already, in one step so that two creates at
// once cannot pass the limit. KEYS: the tenant's endpoints. ARGV: limit, id, record. Returns 1
// when added, 0 when full.
constexpr std::string_view ADD_ENDPOINT = R"lua(
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
)lua";

// An endpoint as a client sees it; the secret only when `with_secret`.
void endpoint_members(JsonWriter& w, const json& record, bool with_secret) {
    w.key("id").string(record.value("id", "")).key("url").string(record.value("url", ""));
    w.key("events").raw(dump_json(record.value("events", json::array())));
    w.key("created_at").string(iso8601_ms(record.value("created_ms", std::int64_t{0})));
    if (with_secret) w.key("secret").string(record.value("secret", ""));
}

std::string secret_body(std::string_view secret) {
    JsonWriter w;
    w.begin_object().key("secret").string(secret).end_object();
    return w.take();
}

}  // namespace

// POST /v1/webhooks {url, events?} -> 201 with the endpoint and its secret, shown this once.
awaitable<Outcome> create_webhook(ShardContext& ctx, const RouteRequest& req) {
    const std::string& body = req.http.body();
    if (body.size() > MAX_WEBHOOK_REQUEST_BYTES)
        co_return error_result(errors::BODY_TOO_LARGE,
                               "a webhook request is at most " + std::to_string(MAX_WEBHOOK_REQUEST_BYTES) + " bytes");
    const json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object())
        co_return error_result(errors::INVALID_JSON, "request body must be a JSON object");
    auto parsed = parse_webhook(doc, "webhook", ctx.config.webhook_allow_nets);
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    const WebhookSpec& spec = std::get<WebhookSpec>(parsed);
    const json record = {{"id", make_webhook_id()},     {"url", spec.url},
                         {"events", spec.events},        {"secret", make_webhook_secret()},
                         {"created_ms", wall_now_ms()}};
    std::vector<std::string> add = args("EVAL", std::string(ADD_ENDPOINT), "1", keys::webhook_endpoints(req.principal.tenant),
                                        std::to_string(webhooks::MAX_ENDPOINTS), record["id"].get<std::string>(),
                                        dump_json(record));
    const RedisValue added = co_await ctx.redis.command(std::move(add), REDIS_TIMEOUT);
    if (!added.ok()) co_return redis_unavailable();
    if (added.integer == 0)
        co_return error_result(errors::TOO_MANY_WEBHOOKS, "the tenant has " + std::to_string(webhooks::MAX_ENDPOINTS) +
                                                              " webhook endpoints, the most it may: delete one first");
    JsonWriter w;
    w.begin_object();
    endpoint_members(w, record, true);
    w.end_object();
    co_return text_result(201, w.take());
}

// GET /v1/webhooks: the tenant's endpoints, without secrets (at most MAX_ENDPOINTS).
awaitable<Outcome> list_webhooks(ShardContext& ctx, const RouteRequest& req) {
    std::vector<std::string> read = args("HGETALL", keys::webhook_endpoints(req.principal.tenant));
    const RedisValue all = co_await ctx.redis.command(std::move(read), REDIS_TIMEOUT);
    if (!all.ok()) co_return redis_unavailable();
    std::vector<json> records;
    for (std::size_t i = 1; i < all.elements.size(); i += 2) {
        json record = json::parse(all.elements[i].str, nullptr, /*allow_exceptions=*/false);
        if (record.is_object()) records.push_back(std::move(record));
    }
    std::sort(records.begin(), records.end(), [](const json& a, const json& b) {
        return a.value("created_ms", std::int64_t{0}) < b.value("created_ms", std::int64_t{0});
    });
    JsonWriter w;
    w.begin_object().key("webhooks").begin_array();
    for (const json& record : records) {
        w.begin_object();
        endpoint_members(w, record, false);
        w.end_object();
    }
    w.end_array().end_object();
    co_return text_result(200, w.take());
}

// DELETE /v1/webhooks/{id}: deliveries already made keep their attempts; those still due are
// dropped by the deliverer (the endpoint is gone).
awaitable<Outcome> delete_webhook(ShardContext& ctx, const RouteRequest& req) {
    const std::string& id = req.job_id;
    const auto missing = [&] { return error_result(errors::WEBHOOK_NOT_FOUND, "no webhook endpoint with id '" + id + "'"); };
    if (!is_webhook_id(id)) co_return missing();
    std::vector<std::string> remove = args("HDEL", keys::webhook_endpoints(req.principal.tenant), id);
    const RedisValue removed = co_await ctx.redis.command(std::move(remove), REDIS_TIMEOUT);
    if (!removed.ok()) co_return redis_unavailable();
    if (removed.integer == 0) co_return missing();
    JsonWriter w;
    w.begin_object().key("id").string(id).key("deleted").raw("true").end_object();
    co_return text_result(200, w.take());
}

// GET /v1/webhooks/secret: the tenant's signing secret for per-job webhook URLs, made on first
// use (the deliverer makes it the same way, SET NX, if a delivery comes first).
awaitable<Outcome> get_webhook_secret(ShardContext& ctx, const RouteRequest& req) {
    const std::string key = keys::webhook_secret(req.principal.tenant);
    std::vector<std::vector<std::string>> commands;
    commands.push_back(args("SET", key, make_webhook_secret(), "NX"));
    commands.push_back(args("GET", key));
    const auto replies = co_await transaction(ctx, std::move(commands));
    if (!replies) co_return redis_unavailable();
    co_return text_result(200, secret_body((*replies)[1].str));
}

// POST /v1/webhooks/secret: a fresh secret, in force for every delivery attempt from now on.
awaitable<Outcome> rotate_webhook_secret(ShardContext& ctx, const RouteRequest& req) {
    const std::string secret = make_webhook_secret();
    std::vector<std::string> set = args("SET", keys::webhook_secret(req.principal.tenant), secret);
    const RedisValue stored = co_await ctx.redis.command(std::move(set), REDIS_TIMEOUT);
    if (!stored.ok()) co_return redis_unavailable();
    co_return text_result(200, secret_body(secret));
}

// GET /v1/jobs/{id}/webhooks: the job's own webhook and every delivery attempt for the job, to
// any target, oldest first (at most the deliverer's bound per job).
awaitable<Outcome> job_webhooks(ShardContext& ctx, const RouteRequest& req) {
    const std::string& id = req.job_id;
    if (!is_uuid(id)) co_return job_not_found(id);
    std::vector<std::vector<std::string>> reads;
    reads.push_back(args("HMGET", keys::job(id), "tenant", "webhook_url", "webhook_events"));
    reads.push_back(args("LRANGE", keys::webhook_attempts(id), "0", "-1"));
    const auto replies = co_await transaction(ctx, std::move(reads));
    if (!replies) co_return redis_unavailable();
    const auto& fields = (*replies)[0].elements;
    if (fields.size() != 3 || fields[0].kind != RedisValue::Kind::STRING || !req.principal.may_see(fields[0].str))
        co_return job_not_found(id);
    JsonWriter w;
    w.begin_object().key("job_id").string(id).key("webhook");
    if (fields[1].kind == RedisValue::Kind::STRING) {
        json events = json::array();
        std::string_view rest = fields[2].str;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            events.push_back(std::string(rest.substr(0, comma)));
            rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
        }
        w.begin_object().key("url").string(fields[1].str).key("events").raw(dump_json(events)).end_object();
    } else {
        w.null();
    }
    w.key("attempts").begin_array();
    for (const auto& entry : (*replies)[1].elements) {
        const json attempt = json::parse(entry.str, nullptr, /*allow_exceptions=*/false);
        if (attempt.is_object()) w.raw(dump_json(attempt));
    }
    w.end_array().end_object();
    co_return text_result(200, w.take());
}

}  // namespace sluice::api
