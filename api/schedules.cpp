// Cron schedule handlers (see schedules.hpp).
#include "schedules.hpp"

#include "credentials.hpp"
#include "cron.hpp"
#include "job_reads.hpp"
#include "keys.hpp"
#include "type_schemas.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>

namespace sluice::api {
namespace {

constexpr std::string_view ID_PREFIX = "sch_";
constexpr std::size_t ID_BYTES = 12;
constexpr std::array<std::string_view, 4> MEMBERS = {"cron", "timezone", "missed", "job"};
// Options of POST /v1/jobs that a schedule's job may not have: its cron says when it runs, nobody
// follows a fired job at its birth, and a cached answer would make a tick fire nothing.
constexpr std::array<std::string_view, 4> REFUSED_OPTIONS = {"delay_s", "run_at", "on_disconnect", "cache_ttl_s"};

// The hash fields a schedule body is built from, in HMGET order.
constexpr std::array<std::string_view, 14> FIELDS = {
    "id",    "tenant",  "cron",    "timezone",  "missed",   "job",       "created_ms",
    "next_tick", "fired", "skipped", "refused", "last_tick", "last_job", "last_error"};

// Stores a schedule unless the tenant holds `limit` already or no worker has declared its job's
// type, in one step so that two creates at once cannot pass the limit. KEYS: the schedule's hash,
// the tenant's schedules, keys::CRON_DUE, keys::TYPES. ARGV: limit, id, created_ms, next tick,
// type, then the hash's field/value pairs. Returns 1 when stored, 0 when full, -1 for an unknown
// type.
constexpr std::string_view ADD_SCHEDULE = R"lua(
if redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 0 then return -1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6, #ARGV))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return 1
)lua";

bool is_schedule_id(std::string_view id) {
    if (!id.starts_with(ID_PREFIX) || id.size() != ID_PREFIX.size() + 2 * ID_BYTES) return false;
    return std::all_of(id.begin() + static_cast<std::ptrdiff_t>(ID_PREFIX.size()), id.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); });
}

HttpResult schedule_not_found(std::string_view id) {
    return error_result(errors::SCHEDULE_NOT_FOUND, "no schedule with id '" + std::string(id) + "'");
}

// A schedule as checked: what its hash will hold besides its counters.
struct ScheduleSpec {
    std::string cron, timezone, missed, job_json, type;
    proto::Submit submit;  // the job as checked; its id and times are the broker's to fill in at each tick
    std::int64_t expire_after_ms = 0;
    std::int64_t next_tick = 0;
    json input;  // the job's input, for its type's schema
};

// Checks a POST /v1/schedules body as of `now_ms`: the job by parse_submit(), as POST /v1/jobs.
Checked<ScheduleSpec> parse_schedule(std::string_view body, std::int64_t now_ms, const ApiConfig& config) {
    auto parsed = parse_json_object(body);
    if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
    const json& doc = std::get<json>(parsed);
    for (const auto& item : doc.items())
        if (std::find(MEMBERS.begin(), MEMBERS.end(), item.key()) == MEMBERS.end())
            return api_error(errors::INVALID_REQUEST, item.key() + " is not a schedule member (cron, timezone, missed, job)");
    ScheduleSpec spec;
    const auto text = [&doc](const char* name, std::string fallback) -> std::optional<std::string> {
        const auto it = doc.find(name);
        if (it == doc.end()) return fallback;
        if (!it->is_string()) return std::nullopt;
        return it->get<std::string>();
    };
    const auto cron = text("cron", "");
    if (!cron || cron->empty()) return api_error(errors::INVALID_CRON, "cron is required: a string such as \"*/5 * * * *\"");
    const auto timezone = text("timezone", "UTC");
    if (!timezone) return api_error(errors::INVALID_TIMEZONE, "timezone must be a string: an IANA name such as Europe/Paris");
    const auto missed = text("missed", "run_once");
    if (!missed || (*missed != "run_once" && *missed != "skip"))
        return api_error(errors::INVALID_REQUEST, "missed must be \"run_once\" (the default) or \"skip\"");
    auto made = cron::Cron::make(*cron, *timezone);
    if (auto* error = std::get_if<cron::Cron::Error>(&made))
        return api_error(error->zone ? errors::INVALID_TIMEZONE : errors::INVALID_CRON, error->message);
    const auto first = std::get<cron::Cron>(made).next_after(now_ms);
    if (!first) return api_error(errors::INVALID_CRON, "the cron expression never fires (such as February 30)");

    const auto job = doc.find("job");
    if (job == doc.end() || !job->is_object()) return api_error(errors::INVALID_REQUEST, "job must be an object: a POST /v1/jobs body");
    if (const auto options = job->find("options"); options != job->end() && options->is_object())
        for (std::string_view name : REFUSED_OPTIONS)
            if (options->contains(name))
                return api_error(errors::INVALID_REQUEST, "job.options." + std::string(name) +
                                                            " does not apply to a schedule's job (its cron says when "
                                                            "it runs)");
    spec.job_json = dump_json(*job);
    auto submit = parse_submit(spec.job_json, "", std::nullopt, config.max_input_bytes, now_ms, &spec.input,
                               config.webhook_allow_nets);
    if (auto* error = std::get_if<ApiError>(&submit)) {
        error->message = "job: " + error->message;
        return *error;
    }
    proto::Submit& checked = std::get<proto::Submit>(submit);
    if (checked.expire_at_ms != 0) spec.expire_after_ms = static_cast<std::int64_t>(checked.expire_at_ms) - now_ms;
    checked.expire_at_ms = 0;
    spec.type = checked.type;
    spec.submit = std::move(checked);
    spec.cron = *cron;
    spec.timezone = *timezone;
    spec.missed = *missed;
    spec.next_tick = *first;
    return spec;
}

// A schedule body from its HMGET reply (FIELDS order); nullopt for a schedule that is gone.
std::optional<std::string> schedule_json(const std::vector<RedisValue>& fields) {
    if (fields.size() != FIELDS.size() || fields[0].kind != RedisValue::Kind::STRING) return std::nullopt;
    const auto str = [&fields](std::size_t i) -> const std::string* {
        return fields[i].kind == RedisValue::Kind::STRING && !fields[i].str.empty() ? &fields[i].str : nullptr;
    };
    const auto number = [&str](std::size_t i) { return str(i) ? std::atoll(str(i)->c_str()) : 0; };
    JsonWriter w;
    w.begin_object();
    for (std::size_t i = 0; i < 5; ++i) w.key(FIELDS[i]).string(str(i) ? *str(i) : "");
    const json job = json::parse(str(5) ? *str(5) : "null", nullptr, /*allow_exceptions=*/false);
    w.key("job").raw(dump_json(job.is_discarded() ? json(nullptr) : job));
    w.key("created_at").string(iso8601_ms(number(6)));
    // 0: the cron will not fire again (its zone is gone from the host's tzdata).
    w.key("next_tick");
    if (number(7) > 0) w.string(iso8601_ms(number(7)));
    else w.null();
    w.key("fired").integer(number(8)).key("skipped").integer(number(9)).key("refused").integer(number(10));
    w.key("last_tick");
    if (number(11) > 0) w.string(iso8601_ms(number(11)));
    else w.null();
    for (std::size_t i = 12; i < 14; ++i) {
        w.key(i == 12 ? "last_job_id" : "last_error");
        if (str(i)) w.string(*str(i));
        else w.null();
    }
    w.end_object();
    return w.take();
}

std::vector<std::string> read_fields(const std::string& id) {
    std::vector<std::string> hmget = args("HMGET", keys::cron(id));
    for (std::string_view field : FIELDS) hmget.emplace_back(field);
    return hmget;
}

// The schedule `id` as `principal` may see it: its HMGET reply, or the 404 (no such schedule,
// or another tenant's) or 503 to answer.
awaitable<std::variant<std::vector<RedisValue>, HttpResult>> visible_schedule(ShardContext& ctx, const Principal& principal,
                                                                              const std::string& id) {
    if (!is_schedule_id(id)) co_return schedule_not_found(id);
    std::vector<std::string> read = read_fields(id);
    RedisValue fields = co_await ctx.redis.command(std::move(read), REDIS_TIMEOUT);
    if (!fields.ok()) co_return redis_unavailable();
    if (fields.elements.size() != FIELDS.size() || fields.elements[1].kind != RedisValue::Kind::STRING ||
        !principal.may_see(fields.elements[1].str))
        co_return schedule_not_found(id);
    co_return std::move(fields.elements);
}

}  // namespace

awaitable<Outcome> create_schedule(ShardContext& ctx, const RouteRequest& req) {
    const std::string& body = req.http.body();
    if (body.size() > ctx.config.schedule_max_bytes)
        co_return error_result(errors::BODY_TOO_LARGE, "a schedule is at most " + std::to_string(ctx.config.schedule_max_bytes) +
                                                           " bytes (SLUICE_SCHEDULE_MAX_BYTES)");
    const std::int64_t now = wall_now_ms();
    auto parsed = parse_schedule(body, now, ctx.config);
    if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
    ScheduleSpec& spec = std::get<ScheduleSpec>(parsed);
    auto refused = co_await check_input(ctx, spec.type, spec.input);
    if (refused) co_return std::move(*refused);

    const std::string id = std::string(ID_PREFIX) + random_hex(ID_BYTES);
    const std::string& tenant = req.principal.tenant;
    // Every job it fires is the tenant's, submitted by this key, as POST /v1/jobs would make it.
    spec.submit.tenant = tenant;
    spec.submit.key_id = req.principal.key_id;
    std::vector<std::string> add = args(
        "EVAL", std::string(ADD_SCHEDULE), "4", keys::cron(id), keys::crons_of(tenant), std::string(keys::CRON_DUE),
        std::string(keys::TYPES), std::to_string(ctx.config.max_schedules_per_tenant), id, std::to_string(now),
        std::to_string(spec.next_tick), spec.type);
    const auto field = [&add](std::string_view name, std::string value) {
        add.emplace_back(name);
        add.push_back(std::move(value));
    };
    field("id", id);
    field("tenant", tenant);
    field("key_id", req.principal.key_id);
    field("cron", spec.cron);
    field("timezone", spec.timezone);
    field("missed", spec.missed);
    field("job", spec.job_json);
    field("submit", proto::encode_body(spec.submit));
    field("expire_after_ms", std::to_string(spec.expire_after_ms));
    field("created_ms", std::to_string(now));
    field("next_tick", std::to_string(spec.next_tick));
    for (const char* counter : {"fired", "skipped", "refused"}) field(counter, "0");
    const RedisValue added = co_await ctx.redis.command(std::move(add), REDIS_TIMEOUT);
    if (!added.ok()) co_return redis_unavailable();
    if (added.integer == -1)
        co_return error_result(errors::UNKNOWN_JOB_TYPE, "no worker has declared job type '" + spec.type + "'");
    if (added.integer == 0)
        co_return error_result(errors::TOO_MANY_SCHEDULES,
                               "the tenant has " + std::to_string(ctx.config.max_schedules_per_tenant) +
                                   " schedules, the most it may (SLUICE_MAX_SCHEDULES_PER_TENANT): delete one first");
    std::vector<std::string> read = read_fields(id);
    const RedisValue fields = co_await ctx.redis.command(std::move(read), REDIS_TIMEOUT);
    auto shown = fields.ok() ? schedule_json(fields.elements) : std::nullopt;
    if (!shown) co_return redis_unavailable();
    HttpResult r = text_result(201, std::move(*shown));
    r.headers.emplace_back("Location", "/v1/schedules/" + id);
    co_return r;
}

awaitable<Outcome> list_schedules(ShardContext& ctx, const RouteRequest& req) {
    for (const auto& [name, value] : req.target.query)
        if (name != "limit" && name != "offset" && name != "tenant")
            co_return error_result(errors::INVALID_REQUEST, name + " is not a parameter (limit, offset, tenant)");
    auto paged = parse_page(req.target.query);
    if (auto* error = std::get_if<ApiError>(&paged)) co_return error_result(*error);
    const Page page = std::get<Page>(paged);
    std::string tenant = req.principal.tenant;
    if (auto it = req.target.query.find("tenant"); it != req.target.query.end()) {
        if (req.principal.role != Role::ADMIN)
            co_return error_result(errors::INVALID_REQUEST, "tenant is for admin keys: a member key lists its own tenant's schedules");
        if (!valid_tenant(it->second))
            co_return error_result(errors::INVALID_REQUEST, "tenant must match [A-Za-z0-9_.-]{1,64}");
        tenant = it->second;
    }
    std::vector<std::vector<std::string>> head;
    head.push_back(args("ZCARD", keys::crons_of(tenant)));
    head.push_back(args("ZRANGE", keys::crons_of(tenant), std::to_string(page.offset),
                        std::to_string(page.offset + page.limit - 1)));
    const auto counted = co_await transaction(ctx, std::move(head));
    if (!counted) co_return redis_unavailable();
    std::vector<std::vector<std::string>> reads;
    for (const auto& element : (*counted)[1].elements)
        if (element.kind == RedisValue::Kind::STRING) reads.push_back(read_fields(element.str));
    std::vector<RedisValue> records;
    if (!reads.empty()) {
        auto read = co_await transaction(ctx, std::move(reads));
        if (!read) co_return redis_unavailable();
        records = std::move(*read);
    }
    DeadPageBody body(page, DEAD_PAGE_MAX_BYTES, "schedules");
    for (const auto& record : records) {
        const auto shown = schedule_json(record.elements);
        if (!shown) body.skip();
        else if (!body.add(*shown)) break;
    }
    co_return text_result(200, body.finish((*counted)[0].integer));
}

awaitable<Outcome> get_schedule(ShardContext& ctx, const RouteRequest& req) {
    auto found = co_await visible_schedule(ctx, req.principal, req.job_id);
    if (auto* refused = std::get_if<HttpResult>(&found)) co_return std::move(*refused);
    auto shown = schedule_json(std::get<std::vector<RedisValue>>(found));
    if (!shown) co_return schedule_not_found(req.job_id);
    co_return text_result(200, std::move(*shown));
}

awaitable<Outcome> delete_schedule(ShardContext& ctx, const RouteRequest& req) {
    const std::string& id = req.job_id;
    auto found = co_await visible_schedule(ctx, req.principal, id);
    if (auto* refused = std::get_if<HttpResult>(&found)) co_return std::move(*refused);
    const std::string tenant = std::get<std::vector<RedisValue>>(found)[1].str;
    std::vector<std::vector<std::string>> remove;
    remove.push_back(args("DEL", keys::cron(id)));
    remove.push_back(args("ZREM", std::string(keys::CRON_DUE), id));
    remove.push_back(args("ZREM", keys::crons_of(tenant), id));
    const auto removed = co_await transaction(ctx, std::move(remove));
    if (!removed) co_return redis_unavailable();
    // A delete racing another one: the first says deleted, the second not found.
    if ((*removed)[0].integer == 0) co_return schedule_not_found(id);
    JsonWriter w;
    w.begin_object().key("id").string(id).key("deleted").raw("true").end_object();
    co_return text_result(200, w.take());
}

}  // namespace sluice::api
