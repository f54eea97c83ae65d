// Job records as the api reads them from Redis (schemas/PROTOCOL.md, Redis key layout): a
// job's hash and history, a page of its event stream, whether it can still change. Every read
// answers "Redis unavailable" as a value (nullopt, or ok() false), never by throwing.
// Loop thread only, like the ShardContext they read through.
#pragma once

#include "request.hpp"
#include "shard_context.hpp"

#include <optional>
#include <string>
#include <vector>

namespace sluice::api {

// Redis commands answer in well under a millisecond; past this Redis counts as unavailable.
inline constexpr auto REDIS_TIMEOUT = std::chrono::milliseconds(2000);
// Long polls and SSE streams re-read Redis at least this often. Notices are missed only while
// the subscriber reconnects, and its resubscribe wakes everybody, so this is a safety net; at
// 10,000 open streams a 1 s period cost 20,000 Redis reads a second.
inline constexpr auto RECHECK_INTERVAL = std::chrono::seconds(10);

// Builds a command's argument list. (GCC 12 mis-compiles braced string lists inside co_await,
// so arguments are built in a statement of their own.)
template <class... Parts>
std::vector<std::string> args(Parts&&... parts) {
    std::vector<std::string> out;
    (out.emplace_back(std::forward<Parts>(parts)), ...);
    return out;
}

// A job as read from Redis: its hash fields (JOB_FIELDS that exist) and history entries.
struct JobRecord {
    JobHash hash;  // empty: no such job (or it expired)
    std::vector<std::string> history;
};

// Runs `commands` as one MULTI ... EXEC in a single round trip, so they see one moment of
// Redis (a broker script never lands between them). Returns EXEC's replies, one per
// command, or nullopt when Redis is unavailable or any of them failed.
awaitable<std::optional<std::vector<RedisValue>>> transaction(ShardContext& ctx,
                                                              std::vector<std::vector<std::string>> commands);

// Reads the jobs `ids` (fields and history) in one transaction: nullopt when Redis is
// unavailable; a record with an empty hash for a job that does not exist.
awaitable<std::optional<std::vector<JobRecord>>> load_jobs(ShardContext& ctx, const std::vector<std::string>& ids);

// Reads the fields (no history) of the jobs `ids` in one transaction: nullopt when Redis is
// unavailable; an empty hash for a job that does not exist.
awaitable<std::optional<std::vector<JobHash>>> load_job_fields(ShardContext& ctx, const std::vector<std::string>& ids);

// Reads one job: nullopt when Redis is unavailable, an empty hash for no such job.
awaitable<std::optional<JobRecord>> load_job(ShardContext& ctx, const std::string& id);

// The tenant of job `id`: "" for no such job, nullopt when Redis is unavailable.
awaitable<std::optional<std::string>> job_tenant(ShardContext& ctx, const std::string& id);

// Up to `count` events of job `id` after event number `after`, oldest first; ok() false when
// Redis is unavailable. Entries that are not well formed are left out.
struct EventPage {
    bool ok = false;
    bool full = false;  // `count` entries came: more may be waiting
    std::vector<EventEntry> events;
};
awaitable<EventPage> read_events(ShardContext& ctx, const std::string& id, std::uint64_t after, int count);

// How many events a follower's reads ask for: FIRST_READ_EVENTS at first, then as many as fit
// in the follower's `batch_bytes` at the size of the largest event (`largest` bytes as sent;
// 0: the last read brought none, keep `count`) the last read brought, at most EVENT_BATCH. So
// a read of large events holds about `batch_bytes`, not EVENT_BATCH events of any size.
inline constexpr int FIRST_READ_EVENTS = 4;
inline constexpr int EVENT_BATCH = 100;
int next_read_count(int count, std::size_t largest, std::size_t batch_bytes);

// Whether a client may follow a job, and what following it involves.
struct FollowCheck {
    // The answer that refuses it: 404 job_not_found (no such job, or another tenant's: the two
    // look alike), 503 redis_unavailable; nullopt: it may.
    std::optional<HttpResult> refused;
    // Its options.on_disconnect grace (followers.hpp); 0: none.
    std::uint32_t disconnect_grace_ms = 0;
};

// Whether a client that sees only `tenant`'s jobs ("": any tenant's) may follow job `id`.
awaitable<FollowCheck> check_follow(ShardContext& ctx, const std::string& id, std::string_view tenant);

// True when nothing more can come for a stream that has sent up to event `last`: the job is
// gone (expired), or it is terminal and its last event number is not past `last`. False when
// Redis does not answer.
awaitable<bool> job_is_over(ShardContext& ctx, const std::string& id, std::uint64_t last);

}  // namespace sluice::api
