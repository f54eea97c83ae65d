// Webhook routes (README.md, "Webhooks"), each for the caller's own tenant: its default
// endpoints (POST /v1/webhooks shows the new endpoint's signing secret once, GET lists them
// without secrets, DELETE /v1/webhooks/{id} removes one), the secret that signs deliveries to
// per-job URLs (GET /v1/webhooks/secret, made on first use; POST rotates it), and the delivery
// attempts of one job (GET /v1/jobs/{id}/webhooks, with GET /v1/jobs/{id}'s tenant rule).
// The records live in Redis (keys::webhook_endpoints, keys::webhook_secret,
// keys::webhook_attempts); the deliverer (python_workers/sluice/webhooks.py) reads them.
// Loop thread only.
#pragma once

#include "routes.hpp"

namespace sluice::api {

awaitable<Outcome> create_webhook(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> list_webhooks(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> delete_webhook(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> get_webhook_secret(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> rotate_webhook_secret(ShardContext& ctx, const RouteRequest& req);
awaitable<Outcome> job_webhooks(ShardContext& ctx, const RouteRequest& req);

}  // namespace sluice::api
