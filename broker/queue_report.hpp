// What the broker tells GET /v1/queues (and a queued job's eta_s) about its queues, once a
// second: per job type and tenant, the jobs queued (the oldest's age), scheduled and running,
// and those that succeeded or failed in the last minute; per type, the workers serving it.
// Written to the Redis hash keys::QUEUES, one field per type (so a job's eta reads its type's
// alone) plus META_FIELD, bounded in bytes. Not thread-safe: the broker loop thread owns it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::broker {

// The field of keys::QUEUES that holds the report's msgpack map {as_of_ms, truncated}; no job
// type can be named so ('@' is not allowed in one).
inline constexpr std::string_view META_FIELD = "@meta";

// Jobs of each (type, tenant) that ended succeeded or failed over the last minute, in one-second
// buckets.
class RecentOutcomes {
public:
    struct Counts {
        std::uint64_t succeeded = 0;
        std::uint64_t failed = 0;
    };
    // A job of `type` and `tenant` ended at `now_s` (seconds on any steady count).
    void record(const std::string& type, const std::string& tenant, bool succeeded, std::int64_t now_s);
    // The ends of the 60 seconds up to and including `now_s`.
    Counts last_minute(const std::string& type, const std::string& tenant, std::int64_t now_s) const;
    // Forgets the (type, tenant) pairs with nothing in the last minute; returns those left.
    std::map<std::pair<std::string, std::string>, Counts> take_last_minute(std::int64_t now_s);

private:
    static constexpr std::int64_t WINDOW_S = 60;
    struct Bucket {
        std::int64_t second = -1;
        Counts counts;
    };
    using Buckets = std::array<Bucket, WINDOW_S>;
    static Counts sum(const Buckets& buckets, std::int64_t now_s);
    std::map<std::pair<std::string, std::string>, Buckets> pairs_;
};

// One row of the report: a type and tenant.
struct QueueRow {
    std::uint64_t queued = 0;       // in its queue, or waiting out a retry backoff
    std::uint64_t scheduled = 0;
    std::uint64_t running = 0;
    std::int64_t oldest_queued_ms = 0;  // when its oldest queued job was queued; 0: none queued
    std::uint64_t succeeded_last_minute = 0;
    std::uint64_t failed_last_minute = 0;
};
using QueueRows = std::map<std::pair<std::string, std::string>, QueueRow>;  // by (type, tenant)

// The report as HSET arguments, field then value: META_FIELD, then per type (every type of
// `rows` or `workers`) a msgpack map {"workers": n, "tenants": [[tenant, queued, scheduled,
// running, oldest_queued_ms, succeeded_last_minute, failed_last_minute], ...]}. Rows stop once
// the values total `max_bytes` (the rest are left out, and the meta says `truncated`).
std::vector<std::string> queue_report(std::int64_t now_ms, const QueueRows& rows,
                                      const std::map<std::string, std::size_t>& workers, std::size_t max_bytes);

}  // namespace sluice::broker
