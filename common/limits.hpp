// Limits shared by every part of Sluice that checks what it receives: the api (HTTP input),
// the broker (the same fields again, whoever sent them) and the fuzzers. One number each, so
// the parts cannot disagree. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::limits {

// Job type names: 1..128 characters of [A-Za-z0-9_.:-] (they become parts of Redis keys).
// python_workers/sluice/registry.py checks the same rule on the worker side.
inline constexpr std::size_t MAX_TYPE_NAME = 128;
// Tenant names: 1..64 characters of [A-Za-z0-9_.-] (part of the idempotency key's Redis key).
inline constexpr std::size_t MAX_TENANT_NAME = 64;
// Idempotency-Key: 1..255 visible ASCII characters (0x21..0x7e), as Stripe and the IETF
// draft allow; longer keys would only bloat the Redis key built from it.
inline constexpr std::size_t MAX_IDEMPOTENCY_KEY = 255;
// A job's concurrency key: 1..128 visible ASCII characters, as an Idempotency-Key; it is held
// in memory for every queued and running job that shares it, so it is kept short.
inline constexpr std::size_t MAX_CONCURRENCY_KEY = 128;
// Worker names as READY declares them are cut to this many characters, runtimes to RUNTIME.
inline constexpr std::size_t MAX_WORKER_NAME = 128;
inline constexpr std::size_t MAX_RUNTIME_NAME = 16;
// Concurrency a worker may declare in READY.
inline constexpr std::uint32_t MAX_WORKER_CONCURRENCY = 100000;
// A job type's input JSON Schema as READY declares it (opaque text to the broker), in bytes, and
// all of one READY's schemas together. A pydantic model's schema is a few KiB; past the first
// bound the broker ignores that schema, past the second every schema of the READY (the worker
// is still served, its inputs unchecked). The backend socket's frame limit leaves room for both.
inline constexpr std::size_t MAX_SCHEMA_BYTES = 64 * 1024;
inline constexpr std::size_t MAX_READY_SCHEMA_BYTES = 512 * 1024;
// Job options, inclusive ranges: the api answers 422 outside them, and so does the broker to a
// SUBMIT, whoever sent it (its fields are u32 on the wire: 4294967295 attempts must not pass).
inline constexpr std::int64_t TIMEOUT_S_MIN = 1, TIMEOUT_S_MAX = 86400;
inline constexpr std::int64_t MAX_ATTEMPTS_MIN = 1, MAX_ATTEMPTS_MAX = 100;
// How many jobs sharing a concurrency key may run at once.
inline constexpr std::int64_t CONCURRENCY_LIMIT_MIN = 1, CONCURRENCY_LIMIT_MAX = 1000;
// options.disconnect_grace_s of a job canceled when nobody follows it (on_disconnect "cancel"):
// the api renews a followed job's deadline once a second, so under 2 s a follower could lose
// it between renewals; an hour covers a reconnecting mobile client. Default 10 s: a closed
// chat tab stops spending tokens soon, a page reload keeps the job.
inline constexpr std::int64_t DISCONNECT_GRACE_S_MIN = 2, DISCONNECT_GRACE_S_MAX = 3600;
inline constexpr std::int64_t DISCONNECT_GRACE_S_DEFAULT = 10;
// How far ahead a job may be scheduled (options.delay_s, options.run_at), and how long after it
// is due it may wait to start (options.expire_after_s): a year each, in milliseconds. A
// schedule further out is more likely a unit mistake (ms for s) than a plan.
inline constexpr std::int64_t MAX_SCHEDULE_AHEAD_MS = 365LL * 24 * 3600 * 1000;
inline constexpr std::int64_t EXPIRE_AFTER_MS_MIN = 1000, EXPIRE_AFTER_MS_MAX = MAX_SCHEDULE_AHEAD_MS;
// options.cache_ttl_s: how long a job's result answers identical submits. A week, the default
// time a finished job stays in Redis (SLUICE_JOB_TTL_S): an entry never outlives its job's
// default lifetime, and the broker caps it at the configured one.
inline constexpr std::int64_t CACHE_TTL_S_MIN = 1, CACHE_TTL_S_MAX = 7 * 24 * 3600;
// Children of one flow (POST /v1/flows, or one SPAWN): a fan-out, not a batch submit. Each child
// is a job of its own with its own bounds; the parent's JOB carries all their results, which
// must fit in its worker's SLUICE_MAX_INPUT_BYTES.
inline constexpr std::size_t MAX_FLOW_CHILDREN = 100;
// The broker checks a SUBMIT's run_at_ms and expire_at_ms against its own clock with this much
// slack, for the api's clock and the trip between them.
inline constexpr std::int64_t CLOCK_SLACK_MS = 60 * 1000;

// Default largest HTTP request body, in bytes (SLUICE_API_MAX_BODY); past it 413.
inline constexpr std::size_t DEFAULT_MAX_BODY = 1024 * 1024;
// Sizes in bytes, each configurable. A job's input, as msgpack (SLUICE_MAX_INPUT_BYTES, read by
// the api, the broker and the workers): past it the api answers 413 input_too_large, the broker
// 422 to a SUBMIT whoever sent it, and a worker's socket takes no bigger JOB.
inline constexpr std::size_t DEFAULT_MAX_INPUT = 512 * 1024;              // SLUICE_MAX_INPUT_BYTES
// A worker's RESULT (msgpack); past it the job fails without a retry.
inline constexpr std::size_t DEFAULT_MAX_RESULT = 1024 * 1024;            // SLUICE_MAX_RESULT_BYTES
// A CHUNK's data or a PROGRESS message; past it the report is dropped. Streamed tokens are a
// few bytes; 64 KiB leaves room for a paragraph at a time.
inline constexpr std::size_t DEFAULT_MAX_EVENT = 64 * 1024;               // SLUICE_MAX_EVENT_BYTES
// Room in one ZMQ frame for the rest of a message besides its input, result or event (ids and
// names, a few hundred bytes; error text, MAX_ERROR_BYTES). A socket's ZMQ_MAXMSGSIZE is its
// largest payload plus this, so a bigger frame is refused by libzmq (the peer disconnected)
// before it is allocated.
inline constexpr std::size_t FRAME_HEADROOM = 64 * 1024;
// HTTP request header block; past it 431.
inline constexpr std::size_t MAX_HEADER_BYTES = 16 * 1024;
// A FAILURE's error text, in bytes: the broker cuts a longer one to this (at a UTF-8 character
// boundary, common/utf8.hpp) before it logs or stores it, whoever sent it, and the workers cut
// theirs alike before sending (python_workers/sluice/protocol.py MAX_ERROR_BYTES). It is stored
// in the job hash and in each attempt's history entry, up to 1000 of them in one job body; 4 KiB
// is a long paragraph, more than an error message written for a person needs.
inline constexpr std::size_t MAX_ERROR_BYTES = 4096;

}  // namespace sluice::limits
