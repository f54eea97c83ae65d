// Broker configuration: one struct, each field with its default. main.cpp fills it from the
// environment (names in README.md).
#pragma once

#include "job_queue.hpp"
#include "limits.hpp"
#include "redis_login.hpp"
#include "sentinel.hpp"
#include "span_exporter.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sluice::broker {

// CURVE on both sockets (README.md, Security): the broker is the server, and admits a client
// only if its public key is on the allow-list of the socket it reached (checked over ZAP).
struct CurveServer {
    std::string secret_key;             // SLUICE_CURVE_SECRET_KEY_FILE (the file holds the key)
    std::set<std::string> api_keys;     // SLUICE_API_KEYS_FILE: the api instances' public keys
    std::set<std::string> worker_keys;  // SLUICE_WORKER_KEYS_FILE: the workers' public keys
};

struct BrokerConfig {
    // ROUTER the api instances connect to. `*` as the port picks a free one (tests do this).
    std::string frontend_endpoint = "tcp://127.0.0.1:5555";   // SLUICE_BROKER_API_ENDPOINT
    // ROUTER the workers connect to. Bind 0.0.0.0 to accept workers from other hosts.
    std::string backend_endpoint = "tcp://127.0.0.1:5556";    // SLUICE_BROKER_WORKER_ENDPOINT
    // This broker's name in the lease (README.md, "A standby broker"): brokers that share a Redis
    // must have different ids; a broker restarted under its id takes its lease back at once.
    // main.cpp defaults it to the host name.
    std::string broker_id;                                      // SLUICE_BROKER_ID
    // How long the lease lasts unless renewed (every quarter of it): a standby takes over about
    // this long after the leader stops, and a leader that cannot renew for this long stops
    // serving until it can. 2 s: a failover within ~3 s, and far above a loop turn or a Redis
    // round trip, so a busy leader never loses it.
    std::chrono::milliseconds lease_ttl{2000};                  // SLUICE_BROKER_LEASE_MS
    std::string redis_host = "127.0.0.1";                      // SLUICE_REDIS_HOST
    int redis_port = 6399;                                     // SLUICE_REDIS_PORT
    RedisLogin redis_login;            // SLUICE_REDIS_USER, SLUICE_REDIS_PASSWORD_FILE
    // The sentinels to ask where the Redis master is (README.md, Redis failover); set, they
    // replace redis_host and redis_port. None: Redis is at redis_host:redis_port.
    std::optional<sentinel::Config> redis_sentinels;  // SLUICE_REDIS_SENTINELS, SLUICE_REDIS_MASTER_NAME
    // Replicas that must hold a batch of submits before its 202s go out (WAIT after the SUBMIT
    // script), so an acknowledged job outlives its master; fewer within redis_wait_timeout and
    // the batch answers 503 not_replicated. 0: no WAIT, a 202 means on the master (AOF).
    int redis_min_replicas = 0;                                // SLUICE_REDIS_MIN_REPLICAS
    // How long a WAIT may hold the connection: a replica on the same network answers in a
    // millisecond or two; a second rides out a replica's hiccup (Redis runs the connection's
    // next command only after WAIT returns; while replicas are missing the broker waits 100 ms
    // at most: api_side.cpp).
    std::chrono::milliseconds redis_wait_timeout{1000};        // SLUICE_REDIS_WAIT_TIMEOUT_MS
    // Queued and scheduled jobs per type before SUBMIT answers 429 queue_full.
    std::size_t max_queue_depth = 100000;                      // SLUICE_MAX_QUEUE_DEPTH
    // Queued and scheduled jobs of one tenant, all types together, before its SUBMIT answers 429
    // tenant_queue_full (so the schedule holds no more of a tenant's jobs than its queues may).
    // main.cpp makes it max_queue_depth unless set, so by default one tenant can fill one
    // type's queue and no more.
    std::size_t tenant_max_queued = 100000;                    // SLUICE_TENANT_MAX_QUEUED
    // How the tenants with queued jobs of a type share its workers (job_queue.hpp): the jobs a
    // tenant takes per turn, 1 unless listed (SLUICE_TENANT_WEIGHTS, e.g. "acme=3,beta=1"), and
    // the running jobs past which a tenant's jobs wait, none by default
    // (SLUICE_TENANT_MAX_RUNNING).
    QueuePolicy fair_share;
    // How long a finished job's hash and events stay in Redis.
    std::int64_t job_ttl_s = 7 * 24 * 3600;                    // SLUICE_JOB_TTL_S
    // Cap of each job's event stream (XADD MAXLEN ~): bounds a chatty streaming job.
    std::int64_t events_maxlen = 10000;                        // SLUICE_EVENTS_MAXLEN
    // Attempts of a job that may end `lost` (its worker died, or its lease ran out) before it
    // fails; they do not count against its max_attempts, which is the handler's budget.
    std::int64_t max_redeliveries = 5;                         // SLUICE_MAX_REDELIVERIES
    // First retry delay; doubles per attempt up to retry_backoff_max_ms, with +-25% jitter.
    std::int64_t retry_backoff_ms = 1000;                      // SLUICE_RETRY_BACKOFF_MS
    std::int64_t retry_backoff_max_ms = 60000;
    // Largest job input in a SUBMIT, in bytes (msgpack); past it 422 invalid_request.
    std::size_t max_input_bytes = limits::DEFAULT_MAX_INPUT;   // SLUICE_MAX_INPUT_BYTES
    // Largest RESULT a worker may send, in bytes; past it the job fails, not retried.
    std::size_t max_result_bytes = limits::DEFAULT_MAX_RESULT; // SLUICE_MAX_RESULT_BYTES
    // Largest CHUNK data or PROGRESS message, in bytes; past it the report is dropped.
    std::size_t max_event_bytes = limits::DEFAULT_MAX_EVENT;   // SLUICE_MAX_EVENT_BYTES
    // New jobs are refused (507 storage_full) while Redis uses this share of its maxmemory or
    // more, so the results and events of the jobs already taken still fit (Redis refuses every
    // write past maxmemory). Accepted again 5 points below. No effect without a maxmemory.
    int storage_full_percent = 90;                              // SLUICE_STORAGE_FULL_PERCENT
    // Bytes one tenant's jobs may hold in Redis (inputs, events, results, and
    // scripts::JOB_BASE_BYTES each) before its submits answer 507 storage_full; a finished job's
    // bytes come back when it expires (job_ttl_s). Half the shipped maxmemory, so one tenant
    // cannot fill Redis for the others.
    std::int64_t tenant_max_bytes = 2LL << 30;                  // SLUICE_TENANT_MAX_BYTES
    // The window of the token budgets (budgets.hpp): a budget's tokens and requests "per minute"
    // are per window of this length. Tests shorten it to see windows turn.
    std::int64_t budget_window_ms = 60000;                      // SLUICE_BUDGET_WINDOW_MS
    // Requeues after a provider's 429 (RATE_LIMITED) one job may take before it fails: each
    // costs no attempt, but a job that is always refused must still end.
    std::int64_t max_rate_limited = 100;                        // SLUICE_MAX_RATE_LIMITED
    // Job types accepted from the start, as if a worker had declared them (and stored in
    // sluice:types like a declared type), for deployments whose workers start after the api.
    // Each must pass valid_job_type() (common/names.hpp). Empty: a type is known once declared.
    std::vector<std::string> known_types;                     // SLUICE_KNOWN_TYPES (comma-separated)
    // Where the broker's spans go (SLUICE_OTLP_ENDPOINT, span_exporter.hpp); none: no spans.
    std::optional<trace::ExporterConfig> tracing;
    // None: no CURVE, any peer that reaches a socket is served; main.cpp allows that only on
    // endpoints that stay on this host (curve::local_endpoint).
    std::optional<CurveServer> curve;
};

}  // namespace sluice::broker
