// GET /v1/queues and a queued job's place (see queues.hpp).
#include "queues.hpp"

#include "job_reads.hpp"
#include "keys.hpp"

#include <cmath>
#include <map>

namespace sluice::api {
namespace {

// The report's meta field (broker/queue_report.hpp, META_FIELD).
constexpr std::string_view META_FIELD = "@meta";
// Elements of one tenant's row: tenant, queued, scheduled, running, oldest_queued_ms,
// succeeded_last_minute, failed_last_minute.
constexpr std::size_t ROW_SIZE = 7;

struct TypeTotals {
    std::int64_t workers = 0;
    std::int64_t queued = 0, scheduled = 0, running = 0, succeeded = 0, failed = 0;
    std::int64_t oldest_ms = 0;  // 0: none queued
    bool own_rows = false;
};

json decode(std::string_view bytes) {
    return json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true, /*allow_exceptions=*/false);
}

bool valid_row(const json& row) {
    if (!row.is_array() || row.size() < ROW_SIZE || !row[0].is_string()) return false;
    for (std::size_t i = 1; i < ROW_SIZE; ++i)
        if (!row[i].is_number_integer()) return false;
    return true;
}

// Sums the rows of one type's field (those of `tenant` alone, when set) into `totals`.
bool add_type(std::string_view value, const std::optional<std::string>& tenant, TypeTotals& totals) {
    const json v = decode(value);
    if (v.is_discarded() || !v.is_object() || !v["workers"].is_number_integer() || !v["tenants"].is_array())
        return false;
    totals.workers = v["workers"].get<std::int64_t>();
    for (const json& row : v["tenants"]) {
        if (!valid_row(row)) return false;
        if (tenant && row[0].get_ref<const std::string&>() != *tenant) continue;
        totals.own_rows = true;
        totals.queued += row[1].get<std::int64_t>();
        totals.scheduled += row[2].get<std::int64_t>();
        totals.running += row[3].get<std::int64_t>();
        const std::int64_t oldest = row[4].get<std::int64_t>();
        if (oldest > 0 && (totals.oldest_ms == 0 || oldest < totals.oldest_ms)) totals.oldest_ms = oldest;
        totals.succeeded += row[5].get<std::int64_t>();
        totals.failed += row[6].get<std::int64_t>();
    }
    return true;
}

// Writes the budget report's members (see queues_json); false when it does not decode.
bool budget_members(JsonWriter& w, std::string_view budget_report, const std::optional<std::string>& tenant) {
    json report = json::object();
    if (!budget_report.empty()) {
        report = decode(budget_report);
        if (report.is_discarded() || !report.is_object()) return false;
    }
    const json budgets = report.value("budgets", json::array());
    const json paused = report.value("paused", json::array());
    if (!budgets.is_array() || !paused.is_array()) return false;
    w.key("budgets").begin_array();
    for (const json& row : budgets) {
        if (!row.is_array() || row.size() < 6 || !row[0].is_string() || !row[1].is_string()) return false;
        for (std::size_t i = 2; i < 6; ++i)
            if (!row[i].is_number_integer()) return false;
        if (tenant && row[0].get_ref<const std::string&>() != *tenant) continue;
        w.begin_object().key("tenant").string(row[0].get<std::string>()).key("model").string(row[1].get<std::string>());
        w.key("tokens_per_minute").integer(row[2].get<std::int64_t>());
        w.key("requests_per_minute").integer(row[3].get<std::int64_t>());
        w.key("tokens_used").integer(row[4].get<std::int64_t>()).key("requests_used").integer(row[5].get<std::int64_t>());
        w.end_object();
    }
    w.end_array().key("budget_window_s");
    if (report.contains("window_ms") && report["window_ms"].is_number_integer())
        w.number(static_cast<double>(report["window_ms"].get<std::int64_t>()) / 1000);
    else
        w.null();
    w.key("paused_models").begin_array();
    for (const json& row : paused) {
        if (!row.is_array() || row.size() < 2 || !row[0].is_string() || !row[1].is_number_integer()) return false;
        w.begin_object().key("model").string(row[0].get<std::string>());
        w.key("resumes_in_s").number(static_cast<double>(row[1].get<std::int64_t>()) / 1000).end_object();
    }
    w.end_array();
    return true;
}

}  // namespace

std::optional<std::string> queues_json(const std::vector<std::pair<std::string, std::string>>& report,
                                       const std::optional<std::string>& tenant, std::string_view budget_report) {
    std::optional<std::int64_t> as_of;
    bool truncated = false;
    std::map<std::string, TypeTotals> types;
    for (const auto& [field, value] : report) {
        if (field == META_FIELD) {
            const json meta = decode(value);
            if (meta.is_discarded() || !meta.is_object() || !meta["as_of_ms"].is_number_integer()) return std::nullopt;
            as_of = meta["as_of_ms"].get<std::int64_t>();
            truncated = meta.value("truncated", false);
            continue;
        }
        TypeTotals totals;
        if (!add_type(value, tenant, totals)) return std::nullopt;
        // A type only another tenant uses, with no worker serving it, stays out of a tenant's view.
        if (!tenant || totals.own_rows || totals.workers > 0) types.emplace(field, totals);
    }
    JsonWriter w;
    w.begin_object().key("queues").begin_array();
    for (const auto& [type, t] : types) {
        w.begin_object().key("type").string(type).key("workers").integer(t.workers);
        w.key("queued").integer(t.queued).key("scheduled").integer(t.scheduled).key("running").integer(t.running);
        w.key("oldest_queued_age_s");
        if (t.oldest_ms > 0 && as_of)
            w.number(static_cast<double>(std::max<std::int64_t>(0, *as_of - t.oldest_ms)) / 1000);
        else
            w.null();
        w.key("succeeded_last_minute").integer(t.succeeded).key("failed_last_minute").integer(t.failed);
        w.end_object();
    }
    w.end_array().key("as_of");
    if (as_of) w.string(iso8601_ms(*as_of));
    else w.null();
    w.key("truncated").raw(truncated ? "true" : "false");
    if (!budget_members(w, budget_report, tenant)) return std::nullopt;
    return w.end_object().take();
}

std::optional<std::int64_t> eta_seconds(std::string_view type_report, std::int64_t position) {
    if (type_report.empty()) return std::nullopt;
    TypeTotals totals;
    if (!add_type(type_report, std::nullopt, totals)) return std::nullopt;
    const std::int64_t ended = totals.succeeded + totals.failed;
    if (ended == 0) return std::nullopt;
    return static_cast<std::int64_t>(std::ceil(static_cast<double>(position + 1) * 60.0 / static_cast<double>(ended)));
}

awaitable<std::optional<QueuePlace>> queue_place(ShardContext& ctx, const std::string& id, const std::string& type) {
    std::vector<std::vector<std::string>> reads;
    reads.push_back(args("ZRANK", keys::queue(type), id));
    reads.push_back(args("HGET", std::string(keys::QUEUES), type));
    const auto replies = co_await transaction(ctx, std::move(reads));
    if (!replies || (*replies)[0].kind != RedisValue::Kind::INTEGER) co_return std::nullopt;
    const std::int64_t position = (*replies)[0].integer;
    co_return QueuePlace{position, eta_seconds((*replies)[1].str, position)};
}

// GET /v1/queues[?tenant=]
awaitable<Outcome> list_queues(ShardContext& ctx, const RouteRequest& req) {
    std::optional<std::string> tenant;
    if (req.principal.role == Role::MEMBER) tenant = req.principal.tenant;
    for (const auto& [name, value] : req.target.query) {
        if (name != "tenant")
            co_return error_result(errors::INVALID_REQUEST, name + " is not a parameter of GET /v1/queues (tenant)");
        if (req.principal.role == Role::MEMBER)
            co_return error_result(errors::INVALID_REQUEST,
                                   "tenant is for admin keys: a member key sees its own tenant's queues");
        if (!valid_tenant(value))
            co_return error_result(errors::INVALID_REQUEST, "tenant must match [A-Za-z0-9_.-]{1,64}");
        tenant = value;
    }
    std::vector<std::vector<std::string>> reads;
    reads.push_back(args("HGETALL", std::string(keys::QUEUES)));
    reads.push_back(args("GET", std::string(keys::BUDGET_REPORT)));
    const auto replies = co_await transaction(ctx, std::move(reads));
    if (!replies) co_return redis_unavailable();
    const RedisValue& report = (*replies)[0];
    std::vector<std::pair<std::string, std::string>> fields;
    for (std::size_t i = 0; i + 1 < report.elements.size(); i += 2)
        fields.emplace_back(report.elements[i].str, report.elements[i + 1].str);
    auto body = queues_json(fields, tenant, (*replies)[1].str);
    if (!body) co_return error_result(errors::BROKER_ERROR, "the broker's queue report is not readable");
    HttpResult r;
    r.body = std::move(*body);
    co_return r;
}

}  // namespace sluice::api
