// Job records read from Redis (see job_reads.hpp).
#include "job_reads.hpp"

#include "keys.hpp"
#include "log.hpp"

#include <algorithm>
#include <iterator>

namespace sluice::api {
namespace {

// HMGET of a job's JOB_FIELDS.
std::vector<std::string> hmget_job(const std::string& id) {
    std::vector<std::string> hmget{"HMGET", keys::job(id)};
    for (std::string_view field : JOB_FIELDS) hmget.emplace_back(field);
    return hmget;
}

// The commands that read one job: HMGET of its fields, LRANGE of its newest history entries.
void add_job_reads(std::vector<std::vector<std::string>>& commands, const std::string& id) {
    commands.push_back(hmget_job(id));
    commands.push_back({"LRANGE", keys::history(id),
                        std::to_string(-MAX_HISTORY_ENTRIES), "-1"});
}

// Takes a job's HMGET reply for JOB_FIELDS.
JobHash to_hash(RedisValue& hmget) {
    JobHash hash;
    constexpr std::size_t count = std::size(JOB_FIELDS);
    for (std::size_t i = 0; i < count && i < hmget.elements.size(); ++i)
        if (hmget.elements[i].kind == RedisValue::Kind::STRING)
            hash.emplace_back(JOB_FIELDS[i], std::move(hmget.elements[i].str));
    return hash;
}

// Takes a job's HMGET reply for JOB_FIELDS and LRANGE reply for its history.
JobRecord to_record(RedisValue& hmget, RedisValue& lrange) {
    JobRecord record;
    record.hash = to_hash(hmget);
    if (!record.hash.empty()) {
        for (auto& entry : lrange.elements)
            if (entry.kind == RedisValue::Kind::STRING) record.history.push_back(std::move(entry.str));
    }
    return record;
}

// Takes one XRANGE element ([id, [field, value, ...]]) as an EventEntry.
std::optional<EventEntry> to_entry(RedisValue& v) {
    if (v.kind != RedisValue::Kind::ARRAY || v.elements.size() != 2) return std::nullopt;
    EventEntry e;
    e.id = std::move(v.elements[0].str);
    auto& fields = v.elements[1].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2)
        e.fields.emplace_back(std::move(fields[i].str), std::move(fields[i + 1].str));
    return e;
}

}  // namespace

awaitable<std::optional<std::vector<RedisValue>>> transaction(ShardContext& ctx,
                                                              std::vector<std::vector<std::string>> commands) {
    const std::size_t count = commands.size();
    commands.insert(commands.begin(), args("MULTI"));
    commands.push_back(args("EXEC"));
    std::vector<RedisValue> replies = co_await ctx.redis.pipeline(std::move(commands), REDIS_TIMEOUT);
    RedisValue& exec = replies.back();
    if (exec.kind != RedisValue::Kind::ARRAY || exec.elements.size() != count) {
        if (!exec.ok()) log::debug("redis transaction failed: {}", exec.str);
        co_return std::nullopt;
    }
    for (const auto& value : exec.elements)
        if (!value.ok()) co_return std::nullopt;
    co_return std::move(exec.elements);
}

awaitable<std::optional<std::vector<JobRecord>>> load_jobs(ShardContext& ctx, const std::vector<std::string>& ids) {
    std::vector<JobRecord> records;
    if (ids.empty()) co_return records;
    std::vector<std::vector<std::string>> commands;
    commands.reserve(ids.size() * 2);
    for (const auto& id : ids) add_job_reads(commands, id);
    auto replies = co_await transaction(ctx, std::move(commands));
    if (!replies) co_return std::nullopt;
    records.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i)
        records.push_back(to_record((*replies)[2 * i], (*replies)[2 * i + 1]));
    co_return records;
}

awaitable<std::optional<std::vector<JobHash>>> load_job_fields(ShardContext& ctx, const std::vector<std::string>& ids) {
    std::vector<JobHash> hashes;
    if (ids.empty()) co_return hashes;
    std::vector<std::vector<std::string>> commands;
    commands.reserve(ids.size());
    for (const auto& id : ids) commands.push_back(hmget_job(id));
    auto replies = co_await transaction(ctx, std::move(commands));
    if (!replies) co_return std::nullopt;
    hashes.reserve(ids.size());
    for (auto& reply : *replies) hashes.push_back(to_hash(reply));
    co_return hashes;
}

awaitable<std::optional<JobRecord>> load_job(ShardContext& ctx, const std::string& id) {
    std::vector<std::string> ids{id};
    auto records = co_await load_jobs(ctx, ids);
    if (!records) co_return std::nullopt;
    co_return std::move(records->front());
}

awaitable<std::optional<std::string>> job_tenant(ShardContext& ctx, const std::string& id) {
    std::vector<std::string> command = args("HGET", keys::job(id), "tenant");
    RedisValue tenant = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    if (!tenant.ok()) co_return std::nullopt;
    co_return std::move(tenant.str);
}

awaitable<FollowCheck> check_follow(ShardContext& ctx, const std::string& id, std::string_view tenant) {
    std::vector<std::string> command = args("HMGET", keys::job(id), "tenant", "disconnect_grace_ms");
    const RedisValue v = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    if (!v.ok() || v.elements.size() != 2) co_return FollowCheck{redis_unavailable()};
    const std::string& owner = v.elements[0].str;
    if (owner.empty() || (!tenant.empty() && owner != tenant)) co_return FollowCheck{job_not_found(id)};
    const auto grace = parse_unsigned(v.elements[1].str);
    co_return FollowCheck{std::nullopt, grace ? static_cast<std::uint32_t>(*grace) : 0};
}

int next_read_count(int count, std::size_t largest, std::size_t batch_bytes) {
    if (largest == 0) return count;
    return static_cast<int>(std::clamp<std::size_t>(batch_bytes / largest, 1, EVENT_BATCH));
}

awaitable<EventPage> read_events(ShardContext& ctx, const std::string& id, std::uint64_t after, int count) {
    std::vector<std::string> command = args("XRANGE", keys::events(id),
                                            std::to_string(after + 1) + "-0", "+", "COUNT", std::to_string(count));
    RedisValue batch = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    EventPage page;
    page.ok = batch.ok();
    page.full = page.ok && batch.elements.size() >= static_cast<std::size_t>(count);
    page.events.reserve(batch.elements.size());
    for (auto& element : batch.elements)
        if (auto entry = to_entry(element)) page.events.push_back(std::move(*entry));
    co_return page;
}

awaitable<bool> job_is_over(ShardContext& ctx, const std::string& id, std::uint64_t last) {
    std::vector<std::string> command = args("HMGET", keys::job(id), "status", "seq");
    const RedisValue v = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
    if (!v.ok() || v.elements.size() != 2) co_return false;
    if (v.elements[0].kind == RedisValue::Kind::NIL) co_return true;  // hash expired
    if (!is_terminal_status(v.elements[0].str)) co_return false;
    const auto seq = parse_unsigned(v.elements[1].str);
    co_return !seq || *seq <= last;
}

}  // namespace sluice::api
