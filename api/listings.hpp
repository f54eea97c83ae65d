// What a client may look at besides its jobs: GET /v1/workers, the broker's report of the
// workers it knows (keys::WORKERS, written once a second). Loop thread only.
#pragma once

#include "routes.hpp"

namespace sluice::api {

// The report as JSON: {"workers": [{"name", "runtime", "types", "concurrency", "running",
// "last_heartbeat", "leaving"}], "total", "as_of"} (times as RFC 3339), or nullopt for a
// report that is not one. Empty bytes (no report: the broker is down or just started) give no
// workers, a total of 0 and an `as_of` of null.
std::optional<std::string> workers_json(std::string_view report);

awaitable<Outcome> list_workers(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
