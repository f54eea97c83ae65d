// GET /v1/queues, and a queued job's place in its queue (GET /v1/jobs/{id}): both read the
// broker's queue report (keys::QUEUES, broker/queue_report.hpp: one hash field per job type,
// rewritten once a second). A member key sees its own tenant's numbers only: the rows of other
// tenants are left out before anything is summed, and a type shows up for it only when it has
// jobs of that type or a worker serves it. Loop thread only.
#pragma once

#include "routes.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::api {

// The GET /v1/queues body from the report's fields (HGETALL: field, value, ...): {"queues":
// [{"type", "workers", "queued", "scheduled", "running", "oldest_queued_age_s" (null: none
// queued), "succeeded_last_minute", "failed_last_minute"}], "as_of" (null: no report),
// "truncated"}, types in name order. `tenant` set: that tenant's rows only; nullopt: every
// tenant's, summed. nullopt for a report that does not decode. With `budget_report` (the
// broker's keys::BUDGET_REPORT, msgpack; empty: none) also "budgets": [{"tenant", "model",
// "tokens_per_minute", "requests_per_minute", "tokens_used", "requests_used"}] (this window's;
// `tenant`'s alone when set), "budget_window_s" and "paused_models": [{"model",
// "resumes_in_s"}] (a provider's 429).
std::optional<std::string> queues_json(const std::vector<std::pair<std::string, std::string>>& report,
                                       const std::optional<std::string>& tenant, std::string_view budget_report = {});

// The eta of a job `position` jobs from the front of its queue (0: next), from its type's field
// of the report: the seconds the type's workers took to end that many jobs and one more, at the
// pace of the last minute (every tenant's jobs that succeeded or failed). nullopt when there is
// no basis: no report, or none ended in the last minute.
std::optional<std::int64_t> eta_seconds(std::string_view type_report, std::int64_t position);

// A queued job's 0-based place in its type's queue (priority order) and eta; nullopt when it is
// no longer queued or Redis does not answer (the job body then has neither).
awaitable<std::optional<QueuePlace>> queue_place(ShardContext& ctx, const std::string& id, const std::string& type);

awaitable<Outcome> list_queues(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
