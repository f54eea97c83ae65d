// Token budgets over HTTP, admin keys only (README.md, "Token budgets"): PUT /v1/budgets sets a
// (tenant, model)'s tokens and requests per minute, GET /v1/budgets lists them, DELETE
// /v1/budgets?tenant=&model= removes one. They live in the Redis hash keys::BUDGETS, which the
// broker reads once a second; what each budget spent is in GET /v1/queues. Loop thread only.
#pragma once

#include "routes.hpp"

namespace sluice::api {

// The body of PUT /v1/budgets: {"tenant", "model"} required, "tokens_per_minute" and
// "requests_per_minute" (0..their MAX, at least one of them set; 0 or absent: unlimited).
struct BudgetRequest {
    std::string tenant;
    std::string model;
    std::int64_t tokens_per_minute = 0;
    std::int64_t requests_per_minute = 0;
};
// Parses and checks it: 400 invalid_json, 422 invalid_request naming the field.
Checked<BudgetRequest> parse_budget_request(std::string_view body);

// The most budgets a deployment holds (so the broker's reads and the listing stay bounded), and
// the largest limits.
inline constexpr std::int64_t MAX_BUDGETS = 1000;
inline constexpr std::int64_t MAX_TOKENS_PER_MINUTE = 1'000'000'000;
inline constexpr std::int64_t MAX_REQUESTS_PER_MINUTE = 1'000'000;

awaitable<Outcome> put_budget(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> list_budgets(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> delete_budget(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
