// Listings: GET /v1/jobs, the caller's jobs newest first, a page at a time, whatever how many
// there are; GET /v1/workers, the broker's report of the workers it knows (keys::WORKERS,
// written once a second). Loop thread only.
#pragma once

#include "routes.hpp"

#include <map>
#include <optional>
#include <utility>

namespace sluice::api {

// The report as JSON: {"workers": [{"name", "runtime", "types", "concurrency", "running",
// "last_heartbeat", "leaving"}], "total", "as_of"} (times as RFC 3339), or nullopt for a
// report that is not one. Empty bytes (no report: the broker is down or just started) give no
// workers, a total of 0 and an `as_of` of null.
std::optional<std::string> workers_json(std::string_view report);

// GET /v1/jobs's query: `limit` (1..1000, 100), `cursor` (the `next_cursor` of the page before),
// `status` and `type` filters, `tenant` (admin keys only: another tenant's jobs).
struct JobQuery {
    std::int64_t limit = 100;
    std::optional<std::pair<std::int64_t, std::string>> after;  // the cursor: created_ms, id
    std::string status, type, tenant;
};
Checked<JobQuery> parse_job_query(const std::map<std::string, std::string>& query);

// A cursor: the created_ms and id of the last job of a page, "{ms}.{id}".
std::string job_cursor(std::int64_t created_ms, std::string_view id);

awaitable<Outcome> list_jobs(ShardContext& ctx, const RouteRequest& req);

awaitable<Outcome> list_workers(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
