// GET /v1/workers (see listings.hpp).
#include "listings.hpp"

#include "job_reads.hpp"
#include "keys.hpp"

namespace sluice::api {

std::optional<std::string> workers_json(std::string_view report) {
    JsonWriter w;
    w.begin_object();
    if (report.empty()) {
        w.key("workers").begin_array().end_array().key("total").integer(0).key("as_of").null().end_object();
        return w.take();
    }
    const json v = json::from_msgpack(report.begin(), report.end(), /*strict=*/true, /*allow_exceptions=*/false);
    if (v.is_discarded() || !v.is_object() || !v["workers"].is_array() || !v["as_of_ms"].is_number_integer() ||
        !v["total"].is_number_integer())
        return std::nullopt;
    w.key("workers").begin_array();
    for (const json& worker : v["workers"]) {
        if (!worker.is_object() || !worker["last_heartbeat_ms"].is_number_integer()) return std::nullopt;
        json shown = worker;
        shown.erase("last_heartbeat_ms");
        shown["last_heartbeat"] = iso8601_ms(worker["last_heartbeat_ms"].get<std::int64_t>());
        w.raw(dump_json(shown));
    }
    w.end_array().key("total").integer(v["total"].get<std::int64_t>());
    w.key("as_of").string(iso8601_ms(v["as_of_ms"].get<std::int64_t>())).end_object();
    return w.take();
}

// GET /v1/workers
awaitable<Outcome> list_workers(ShardContext& ctx, const RouteRequest&) {
    std::vector<std::string> command = args("GET", std::string(keys::WORKERS));
    const RedisValue report = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    if (!report.ok()) co_return redis_unavailable();
    auto body = workers_json(report.str);
    if (!body) co_return error_result(errors::BROKER_ERROR, "the broker's worker report is not readable");
    HttpResult r;
    r.body = std::move(*body);
    co_return r;
}

}  // namespace sluice::api
