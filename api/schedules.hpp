// Cron schedules (README.md, "Schedules"): POST, GET and DELETE /v1/schedules. The api checks a
// schedule (its cron and zone with common/cron.hpp, its job with the very code of POST /v1/jobs),
// stores it with its first tick in Redis (keys::cron, keys::CRON_DUE, keys::crons_of) and reads
// it back; the leading broker fires its ticks (broker/cron_fire.cpp). A member key sees its
// tenant's schedules, an admin every tenant's; to anyone else a schedule does not exist (404).
// Loop thread only.
#pragma once

#include "routes.hpp"

namespace sluice::api {

// POST /v1/schedules {cron, timezone?, missed?, job} -> 201 with the schedule.
awaitable<Outcome> create_schedule(ShardContext& ctx, const RouteRequest& req);
// GET /v1/schedules?limit=&offset=&tenant= (tenant: admin keys only), oldest first.
awaitable<Outcome> list_schedules(ShardContext& ctx, const RouteRequest& req);
// GET /v1/schedules/{id}
awaitable<Outcome> get_schedule(ShardContext& ctx, const RouteRequest& req);
// DELETE /v1/schedules/{id}: no tick fires after it; jobs it fired stay.
awaitable<Outcome> delete_schedule(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
