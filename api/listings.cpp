// GET /v1/jobs and GET /v1/workers (see listings.hpp).
#include "listings.hpp"

#include "job_reads.hpp"
#include "keys.hpp"

#include <algorithm>
#include <array>

namespace sluice::api {
namespace {

constexpr std::array<std::string_view, 7> STATUSES{"scheduled", "queued", "waiting_children", "running",
                                                  "succeeded", "failed", "canceled"};
// Index entries a page looks at, at most: with filters a page may come back short (even empty)
// with a cursor to go on, but its cost never grows with how many jobs the tenant has.
constexpr std::int64_t SCAN_PER_PAGE = 1000;
// A page's body stops before this many bytes (a job summary is a few hundred bytes; its error
// up to 4 KiB).
constexpr std::size_t PAGE_MAX_BYTES = 1024 * 1024;

std::optional<std::pair<std::int64_t, std::string>> parse_cursor(std::string_view text) {
    const std::size_t dot = text.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const auto ms = parse_unsigned(text.substr(0, dot));
    const std::string_view id = text.substr(dot + 1);
    if (!ms || *ms > static_cast<std::uint64_t>(DEAD_OFFSET_MAX) || !is_uuid(id)) return std::nullopt;
    return std::pair{static_cast<std::int64_t>(*ms), std::string(id)};
}

bool matches(const JobHash& hash, const JobQuery& query) {
    const auto is = [&hash](const char* field, const std::string& want) {
        const std::string* value = hash_field(hash, field);
        return want.empty() || (value && *value == want);
    };
    return !hash.empty() && is("status", query.status) && is("type", query.type);
}

}  // namespace

Checked<JobQuery> parse_job_query(const std::map<std::string, std::string>& query) {
    JobQuery out;
    for (const auto& [name, value] : query) {
        if (name == "limit") {
            const auto limit = parse_unsigned(value);
            if (!limit || *limit < 1 || *limit > 1000)
                return api_error(errors::INVALID_REQUEST, "limit must be an integer between 1 and 1000");
            out.limit = static_cast<std::int64_t>(*limit);
        } else if (name == "cursor") {
            out.after = parse_cursor(value);
            if (!out.after) return api_error(errors::INVALID_REQUEST, "cursor must be a next_cursor this api gave out");
        } else if (name == "status") {
            if (std::find(STATUSES.begin(), STATUSES.end(), value) == STATUSES.end())
                return api_error(errors::INVALID_REQUEST,
                                 "status must be scheduled, queued, waiting_children, running, succeeded, failed or canceled");
            out.status = value;
        } else if (name == "type") {
            if (!valid_job_type(value)) return api_error(errors::INVALID_REQUEST, "type must match [A-Za-z0-9_.:-]{1,128}");
            out.type = value;
        } else if (name == "tenant") {
            if (!valid_tenant(value)) return api_error(errors::INVALID_REQUEST, "tenant must match [A-Za-z0-9_.-]{1,64}");
            out.tenant = value;
        } else {
            return api_error(errors::INVALID_REQUEST, name + " is not a parameter (limit, cursor, status, type, tenant)");
        }
    }
    return out;
}

std::string job_cursor(std::int64_t created_ms, std::string_view id) {
    return std::to_string(created_ms) + "." + std::string(id);
}

// GET /v1/jobs: one ZREVRANGEBYSCORE of the tenant's index from the cursor, then the fields of
// the jobs it names, in one transaction: two round trips whatever the page.
awaitable<Outcome> list_jobs(ShardContext& ctx, const RouteRequest& req) {
    auto parsed = parse_job_query(req.target.query);
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    JobQuery query = std::get<JobQuery>(parsed);
    if (!query.tenant.empty() && req.principal.role != Role::ADMIN)
        co_return error_result(errors::INVALID_REQUEST, "tenant is for admin keys: a member key lists its own tenant's jobs");
    const std::string tenant = query.tenant.empty() ? req.principal.tenant : query.tenant;
    const bool filtered = !query.status.empty() || !query.type.empty();
    const std::int64_t scan = filtered ? SCAN_PER_PAGE : query.limit + 1;
    // Jobs of the cursor's millisecond come first, the cursor's own among them: fetch enough
    // past them, and drop those at or before the cursor.
    std::vector<std::string> range = args("ZREVRANGEBYSCORE", keys::jobs_of(tenant),
                                          query.after ? std::to_string(query.after->first) : std::string("+inf"),
                                          "-inf", "WITHSCORES", "LIMIT", "0", std::to_string(scan + 64));
    const RedisValue index = co_await ctx.redis.command(std::move(range), REDIS_TIMEOUT);
    if (!index.ok()) co_return redis_unavailable();
    std::vector<std::pair<std::string, std::int64_t>> entries;
    std::size_t i = 0;
    for (; i + 1 < index.elements.size() && static_cast<std::int64_t>(entries.size()) < scan; i += 2) {
        const std::string& id = index.elements[i].str;
        const std::int64_t ms = std::atoll(index.elements[i + 1].str.c_str());
        if (query.after && ms == query.after->first && id >= query.after->second) continue;
        entries.emplace_back(id, ms);
    }
    const bool index_left = i + 1 < index.elements.size();
    std::vector<std::string> ids;
    for (const auto& entry : entries) ids.push_back(entry.first);
    const auto hashes = co_await load_job_fields(ctx, ids);
    if (!hashes) co_return redis_unavailable();

    JsonWriter body;
    body.begin_object().key("jobs").begin_array();
    std::size_t bytes = 0, shown = 0, used = 0;
    for (; used < entries.size() && static_cast<std::int64_t>(shown) < query.limit; ++used) {
        if (!matches((*hashes)[used], query)) continue;
        std::string job = job_summary_json((*hashes)[used]);
        if (shown > 0 && bytes + job.size() > PAGE_MAX_BYTES) break;
        bytes += job.size();
        ++shown;
        body.raw(job);
    }
    body.end_array().key("next_cursor");
    // More may follow when the page stopped before the end of what it fetched, or the index
    // holds more than it fetched.
    const bool more = used < entries.size() || index_left;
    if (more && used > 0) body.string(job_cursor(entries[used - 1].second, entries[used - 1].first));
    else body.null();
    body.end_object();
    HttpResult r;
    r.body = body.take();
    co_return r;
}

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
