// The catalogue of error codes a client can get, each with its HTTP status: the api answers
// with them and the broker puts them in its REPLYs, so a code means one thing everywhere.
// README.md lists them for clients. Thread-safe.
#pragma once

#include <string_view>

namespace sluice::errors {

struct Code {
    std::string_view name;  // the stable `code` of the JSON error body
    int status;             // its HTTP status
};

inline constexpr Code BAD_REQUEST{"bad_request", 400};            // malformed HTTP
inline constexpr Code INVALID_JSON{"invalid_json", 400};
inline constexpr Code INVALID_REQUEST{"invalid_request", 422};    // a field, header or query parameter
// No API key, or one that is unknown, revoked or malformed; a read token that does not fit.
inline constexpr Code UNAUTHENTICATED{"unauthenticated", 401};
inline constexpr Code FORBIDDEN{"forbidden", 403};                // a member key on an admin route
// A browser request from an origin SLUICE_API_CORS_ORIGINS does not list, that would change state.
inline constexpr Code ORIGIN_NOT_ALLOWED{"origin_not_allowed", 403};
inline constexpr Code NOT_FOUND{"not_found", 404};                // no such endpoint
inline constexpr Code KEY_NOT_FOUND{"key_not_found", 404};
inline constexpr Code JOB_NOT_FOUND{"job_not_found", 404};
inline constexpr Code METHOD_NOT_ALLOWED{"method_not_allowed", 405};
inline constexpr Code DUPLICATE_JOB_ID{"duplicate_job_id", 409};
inline constexpr Code IDEMPOTENCY_CONFLICT{"idempotency_conflict", 409};
inline constexpr Code JOB_FINISHED{"job_finished", 409};          // cancel of a finished job
inline constexpr Code JOB_NOT_DEAD{"job_not_dead", 409};          // retry of a job that is not dead
inline constexpr Code BODY_TOO_LARGE{"body_too_large", 413};
inline constexpr Code INPUT_TOO_LARGE{"input_too_large", 413};   // a job's input, as msgpack
inline constexpr Code UNSUPPORTED_MEDIA_TYPE{"unsupported_media_type", 415};  // a body that is not JSON
inline constexpr Code UNKNOWN_JOB_TYPE{"unknown_job_type", 422};
// options.delay_s or options.run_at is not a time Sluice can schedule: both given, not a number
// or an RFC 3339 date-time, negative, or more than a year ahead.
inline constexpr Code INVALID_SCHEDULE{"invalid_schedule", 422};
// options.expire_after_s is not a number of seconds from 1 to a year.
inline constexpr Code INVALID_EXPIRY{"invalid_expiry", 422};
// A job's input does not fit the JSON Schema its type's workers declared; the body's `path` (a
// JSON Pointer into the input) says where.
inline constexpr Code INVALID_INPUT{"invalid_input", 422};

// A webhook URL (options.webhook.url, POST /v1/webhooks) that is not a string, is too long, not
// http(s), holds a user name or password, or has no valid host or port.
inline constexpr Code INVALID_WEBHOOK_URL{"invalid_webhook_url", 422};
// A webhook URL whose host is a loopback, private, link-local or other non-public address that
// SLUICE_WEBHOOK_ALLOW_NETS does not allow (a name resolving to one is refused at delivery).
inline constexpr Code WEBHOOK_TARGET_REFUSED{"webhook_target_refused", 422};
// Webhook `events` that are not a list of known lifecycle events, each once.
inline constexpr Code INVALID_WEBHOOK_EVENTS{"invalid_webhook_events", 422};
// The tenant holds webhooks::MAX_ENDPOINTS default endpoints already.
inline constexpr Code TOO_MANY_WEBHOOKS{"too_many_webhooks", 422};
inline constexpr Code WEBHOOK_NOT_FOUND{"webhook_not_found", 404};

// A schedule's `cron` that is not a 5-field cron expression (or 6 with seconds first), or one
// that never fires; its `timezone` that is not an IANA zone the host's tzdata knows.
inline constexpr Code INVALID_CRON{"invalid_cron", 422};
inline constexpr Code INVALID_TIMEZONE{"invalid_timezone", 422};
// The tenant holds SLUICE_MAX_SCHEDULES_PER_TENANT schedules already.
inline constexpr Code TOO_MANY_SCHEDULES{"too_many_schedules", 422};
inline constexpr Code SCHEDULE_NOT_FOUND{"schedule_not_found", 404};

inline constexpr Code QUEUE_FULL{"queue_full", 429};
// The tenant holds as many queued jobs as it may, all types together (SLUICE_TENANT_MAX_QUEUED).
inline constexpr Code TENANT_QUEUE_FULL{"tenant_queue_full", 429};
// A key past its rate limit (requests or submits per second), with Retry-After and RateLimit-*.
inline constexpr Code RATE_LIMITED{"rate_limited", 429};
// One client address holds as many connections as it may (SLUICE_API_MAX_CONNECTIONS_PER_CLIENT).
inline constexpr Code TOO_MANY_CONNECTIONS_FROM_CLIENT{"too_many_connections_from_client", 429};
// A WebSocket already follows as many jobs as one may (api/config.hpp, ws_max_subscriptions);
// only ever in a WebSocket's error message, the status says what kind of refusal it is.
inline constexpr Code TOO_MANY_SUBSCRIPTIONS{"too_many_subscriptions", 429};
inline constexpr Code HEADERS_TOO_LARGE{"headers_too_large", 431};
// Redis is near its maxmemory: new jobs wait until results free room or expire.
inline constexpr Code STORAGE_FULL{"storage_full", 507};
inline constexpr Code INTERNAL_ERROR{"internal_error", 500};
inline constexpr Code BROKER_ERROR{"broker_error", 502};          // the broker answered nonsense
inline constexpr Code BROKER_UNAVAILABLE{"broker_unavailable", 503};  // the request never reached it
// The request reached the broker (or may have) but no answer came in time: a SUBMIT may have
// stored the job. Retrying with the same Idempotency-Key is safe.
inline constexpr Code OUTCOME_UNKNOWN{"outcome_unknown", 503};
inline constexpr Code REDIS_UNAVAILABLE{"redis_unavailable", 503};
// The job was stored on the Redis master, but fewer replicas than SLUICE_REDIS_MIN_REPLICAS
// confirmed it in time: it may run, or be lost with the master. Retrying with the same
// Idempotency-Key is safe (it answers for the stored job once replicas hold it).
inline constexpr Code NOT_REPLICATED{"not_replicated", 503};
inline constexpr Code NOT_READY{"not_ready", 503};
inline constexpr Code TOO_MANY_CONNECTIONS{"too_many_connections", 503};

}  // namespace sluice::errors
