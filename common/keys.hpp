// Every Redis key and channel Sluice uses, named in one place (as LevelDB's filename.h names
// its files). The api and the broker build keys only through these; the broker's Lua scripts
// get the same names through the prelude broker/scripts.hpp builds from them.
// schemas/PROTOCOL.md ("Redis key layout") describes what each key holds. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::keys {

// Per job: its hash (state, options, input, result), its event stream, its attempt history.
inline constexpr std::string_view JOB_PREFIX = "sluice:job:";
inline constexpr std::string_view EVENTS_PREFIX = "sluice:events:";
inline constexpr std::string_view HISTORY_PREFIX = "sluice:history:";
// Per tenant: the zset of its job ids scored by created_ms (GET /v1/jobs), "sluice:jobs:{tenant}";
// an id leaves it when the job expires.
inline constexpr std::string_view JOBS_PREFIX = "sluice:jobs:";
// Per job type: the zset of queued job ids, scored by priority and time.
inline constexpr std::string_view QUEUE_PREFIX = "sluice:queue:";
// Per tenant and Idempotency-Key: the job the key made, and the hash of its request.
inline constexpr std::string_view IDEMPOTENCY_PREFIX = "sluice:idem:";
// Zset of running job ids scored by lease deadline; zsets of dead job ids scored by time: of
// every tenant, and one per tenant ("sluice:dead:{tenant}").
inline constexpr std::string_view RUNNING = "sluice:running";
inline constexpr std::string_view DEAD = "sluice:dead";
// Zset of scheduled job ids scored by when they are due (ms): the broker moves the due ones to
// their queues. Zset of the ids of jobs with an expire_after_s that have not started, scored by
// their deadline (ms): the broker fails the ones past it (error code `expired`).
inline constexpr std::string_view SCHEDULED = "sluice:scheduled";
inline constexpr std::string_view DEADLINES = "sluice:deadlines";
// Hash of tenant -> bytes its jobs hold in Redis, against its budget (SLUICE_TENANT_MAX_BYTES);
// zset of what finished jobs were charged, "{id} {tenant} {bytes}" scored by the time Redis
// expires them, so the broker gives the bytes back when they go.
inline constexpr std::string_view TENANT_BYTES = "sluice:tenant_bytes";
inline constexpr std::string_view EXPIRING = "sluice:expiring";
// Zset of the unfinished jobs that asked to be canceled when nobody follows them
// (options.on_disconnect "cancel"), scored by the ms time they will be: now + their grace at
// submit, pushed later by every api whose clients follow them, once a second.
inline constexpr std::string_view FOLLOWED = "sluice:followed";
// Per API key: its hash (hash: SHA-256 of the key, tenant, role, name, created_ms); the set of
// every key id (the admin listing).
inline constexpr std::string_view API_KEY_PREFIX = "sluice:apikey:";
inline constexpr std::string_view API_KEYS = "sluice:apikeys";
// The broker's report of its workers (msgpack, broker/worker_pool.hpp), rewritten once a second
// with a short expiry, so a report of a broker that is gone disappears.
inline constexpr std::string_view WORKERS = "sluice:workers";
// The broker's metrics in the Prometheus text format (broker/metrics.hpp), rewritten once a
// second with a short expiry; GET /metrics of every api appends them.
inline constexpr std::string_view BROKER_METRICS = "sluice:metrics:broker";
// The broker's report of its queues per job type and tenant (msgpack, broker/queue_report.hpp),
// rewritten once a second with a short expiry, like WORKERS (GET /v1/queues, a job's eta_s).
inline constexpr std::string_view QUEUES = "sluice:queues";

// The broker lease (README.md, "A standby broker"): LEADER holds the leading broker's fencing
// token "EPOCH ID" and expires unless renewed; EPOCH counts the leaderships ever granted, so
// each new leader's token differs from every earlier one. Every broker script checks LEADER
// against the token it is given before it writes anything.
inline constexpr std::string_view LEADER = "sluice:broker:leader";
inline constexpr std::string_view EPOCH = "sluice:broker:epoch";

// A job result cache entry (options.cache_ttl_s), per tenant: "sluice:cache:{tenant}:{sha1 of
// type, newline, input}" -> the id of the job that succeeded with that type and input, expiring
// with the cache ttl it was submitted with.
inline constexpr std::string_view CACHE_PREFIX = "sluice:cache:";
// A single-flight entry (options.dedupe), per tenant: "sluice:dedupe:{tenant}:{sha1 of type,
// newline, input}" -> the id of the job that runs for every identical submit while it is queued
// or running (its leader); deleted when that job ends.
inline constexpr std::string_view DEDUPE_PREFIX = "sluice:dedupe:";

// Flows (POST /v1/flows, ctx.spawn): set of the ids of parents whose flow is not settled yet
// (waiting for children, or ended with children still to cancel); list of the parents a child's
// end (or the parent's own cancel) concerns, in the order it happened, for the broker's SETTLE.
inline constexpr std::string_view FLOWS = "sluice:flow:waiting";
inline constexpr std::string_view FLOW_SETTLE = "sluice:flow:settle";

// Token budgets (README.md, "Token budgets"): BUDGETS is a hash "{tenant} {model}" ->
// "{tokens_per_minute} {requests_per_minute}", written by the api (admins), read by the broker
// once a second. BUDGET_USE_PREFIX + "{window}:{tenant}:{model}" is a hash of `tokens` and
// `requests` a (tenant, model) spent in one window (broker/budgets.hpp), written by the broker
// and expiring two windows later, so a restarted or standby broker takes the spend over.
inline constexpr std::string_view BUDGETS = "sluice:budgets";
inline constexpr std::string_view BUDGET_USE_PREFIX = "sluice:budget:use:";
// The broker's report of the budgets' spend and the paused models (msgpack, broker/budgets.hpp),
// rewritten once a second with a short expiry, like QUEUES (GET /v1/queues).
inline constexpr std::string_view BUDGET_REPORT = "sluice:budget:report";
// Models paused after a provider's 429 (README.md, "Provider rate limits"): a hash model -> the
// wall-clock ms its pause ends, written by the broker when it pauses one and read back by a
// restarted or standby broker, which keeps the pause. It expires with the longest pause.
inline constexpr std::string_view MODEL_PAUSES = "sluice:budget:paused";

// Cron schedules (README.md, "Schedules"): per schedule its hash, "sluice:cron:{id}" (ids are
// "sch_" and 24 hex digits, so none is "due" or "tenant"); the zset of every schedule's id
// scored by its next tick (ms), which the leading broker fires; per tenant, the zset of its
// schedule ids scored by created_ms (GET /v1/schedules, and its count against the tenant's cap).
inline constexpr std::string_view CRON_PREFIX = "sluice:cron:";
inline constexpr std::string_view CRON_DUE = "sluice:cron:due";
inline constexpr std::string_view CRON_TENANT_PREFIX = "sluice:cron:tenant:";

// Set of the job types any worker has declared.
inline constexpr std::string_view TYPES = "sluice:types";
// Hash of job type -> the JSON Schema of its input as a worker last declared it in READY (JSON
// text, kept opaque by the broker; the api compiles it and checks submits against it).
inline constexpr std::string_view TYPE_SCHEMAS = "sluice:type_schemas";
// Webhooks (README.md, "Webhooks"): the stream of deliveries to make, one entry per lifecycle
// event and target, read by the deliverers' consumer group; the zset of deliveries waiting for
// their next attempt, scored by when it is due; per job, the list of its delivery attempts; per
// tenant, the hash of its default endpoints (id -> JSON) and its signing secret for per-job URLs.
inline constexpr std::string_view WEBHOOKS = "sluice:webhooks";
inline constexpr std::string_view WEBHOOK_GROUP = "deliverers";
inline constexpr std::string_view WEBHOOK_RETRIES = "sluice:webhook_retries";
inline constexpr std::string_view WEBHOOK_ATTEMPTS_PREFIX = "sluice:webhook_attempts:";
inline constexpr std::string_view WEBHOOK_ENDPOINTS_PREFIX = "sluice:webhook_endpoints:";
inline constexpr std::string_view WEBHOOK_SECRET_PREFIX = "sluice:webhook_secret:";

// Pub/sub channel: a notice for every new job event (PROTOCOL.md, Notices).
inline constexpr std::string_view NOTIFY_CHANNEL = "sluice:notify";

inline std::string join(std::string_view prefix, std::string_view name) {
    std::string key;
    key.reserve(prefix.size() + name.size());
    key += prefix;
    key += name;
    return key;
}

inline std::string job(std::string_view id) { return join(JOB_PREFIX, id); }
inline std::string events(std::string_view id) { return join(EVENTS_PREFIX, id); }
inline std::string history(std::string_view id) { return join(HISTORY_PREFIX, id); }
inline std::string queue(std::string_view type) { return join(QUEUE_PREFIX, type); }
inline std::string jobs_of(std::string_view tenant) { return join(JOBS_PREFIX, tenant); }
inline std::string api_key(std::string_view id) { return join(API_KEY_PREFIX, id); }
inline std::string webhook_attempts(std::string_view id) { return join(WEBHOOK_ATTEMPTS_PREFIX, id); }
inline std::string webhook_endpoints(std::string_view tenant) { return join(WEBHOOK_ENDPOINTS_PREFIX, tenant); }
inline std::string webhook_secret(std::string_view tenant) { return join(WEBHOOK_SECRET_PREFIX, tenant); }
inline std::string budget_field(std::string_view tenant, std::string_view model) {
    std::string out = join(tenant, " ");
    out += model;
    return out;
}
// Tenant names hold no ':' (names.hpp); a model name may, but it comes last.
inline std::string budget_use(std::int64_t window, std::string_view tenant, std::string_view model) {
    std::string out = join(BUDGET_USE_PREFIX, std::to_string(window));
    out += ':';
    out += tenant;
    out += ':';
    out += model;
    return out;
}
inline std::string cron(std::string_view id) { return join(CRON_PREFIX, id); }
inline std::string crons_of(std::string_view tenant) { return join(CRON_TENANT_PREFIX, tenant); }
inline std::string dead(std::string_view tenant) {
    std::string key = join(DEAD, ":");
    key += tenant;
    return key;
}
// `key` is an Idempotency-Key as the api checked it (limits.hpp); tenants hold no ':'.
inline std::string idempotency(std::string_view tenant, std::string_view key) {
    std::string out = join(IDEMPOTENCY_PREFIX, tenant);
    out += ':';
    out += key;
    return out;
}

}  // namespace sluice::keys
