// The Lua scripts of what the broker does on the clock (broker/timed.cpp): the schedule (read
// back at a resync, due jobs queued), deadlines (jobs not started in time failed, `expired`) and
// the queue report. Built on the prelude of scripts.hpp, with the same guarantees: each runs
// atomically and checks a job's status before it writes.
#pragma once

#include "scripts.hpp"

namespace sluice::broker::scripts {

// Elements per job in the replies of LOAD_SCHEDULED, PROMOTE and EXPIRE_DUE.
inline constexpr std::size_t LOAD_SCHEDULED_STRIDE = 4;
inline constexpr std::size_t PROMOTE_STRIDE = 8;
inline constexpr std::size_t EXPIRE_DUE_STRIDE = 4;

// Every scheduled job, for the broker's count of them (schedule.hpp). KEYS: none. Returns a
// flat list, LOAD_SCHEDULED_STRIDE per job: id, type, tenant, due (ms).
inline const std::string LOAD_SCHEDULED = HEAD + R"lua(
local out = {}
local entries = redis.call('ZRANGE', K.scheduled, 0, -1, 'WITHSCORES')
for k = 1, #entries, 2 do
  local j = redis.call('HMGET', K.job .. entries[k], 'type', 'tenant')
  out[#out + 1] = entries[k]
  out[#out + 1] = j[1] or ''
  out[#out + 1] = j[2] or 'default'
  out[#out + 1] = entries[k + 1]
end
return out
)lua";

// scheduled -> queued for the scheduled jobs due by now, at most a limit of them, the earliest
// first: each goes into its queue scored by its due time (so jobs due earlier run earlier) with
// a `queued` event; one past its expire_at_ms by then ends `expired` instead. KEYS: none. ARGV:
// now_ms, limit, maxlen, ttl_s. Returns a flat list, PROMOTE_STRIDE per job taken off the
// schedule: id, outcome ('queued', 'expired' or 'gone': no longer scheduled), type, priority,
// tenant, concurrency key, concurrency limit, due (ms).
inline const std::string PROMOTE = PRELUDE + R"lua(
local now, maxlen, ttl = ARGV[1], ARGV[3], ARGV[4]
local out = {}
local due = redis.call('ZRANGEBYSCORE', K.scheduled, '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for k = 1, #due, 2 do
  local id, at = due[k], due[k + 1]
  local job = K.job .. id
  redis.call('ZREM', K.scheduled, id)
  local j = redis.call('HMGET', job, 'status', 'type', 'priority', 'tenant', 'concurrency_key', 'concurrency_limit',
                       'expire_at_ms')
  local outcome = 'gone'
  if j[1] == 'scheduled' and j[7] and tonumber(now) >= tonumber(j[7]) then
    outcome = 'expired'
    expire(id, now, maxlen, ttl)
  elseif j[1] == 'scheduled' then
    outcome = 'queued'
    redis.call('HSET', job, 'status', 'queued')
    redis.call('ZADD', K.queue .. j[2], score(j[3], at), id)
    add_event(id, maxlen, now, {'event', 'queued'})
  end
  for _, v in ipairs({id, outcome, j[2] or '', j[3] or '0', j[4] or 'default', j[5] or '', j[6] or '0', at}) do
    out[#out + 1] = v
  end
end
return out
)lua";

// Ends the jobs past their expire_at_ms that have not started (queued, waiting out a retry
// backoff, or scheduled), at most a limit of them: failed, `expired`. A job in K.deadlines in
// another state only leaves it. KEYS: none. ARGV: now_ms, limit, maxlen, ttl_s. Returns a flat
// list, EXPIRE_DUE_STRIDE per job expired: id, the status it left, type, tenant.
inline const std::string EXPIRE_DUE = PRELUDE + R"lua(
local now, maxlen, ttl = ARGV[1], ARGV[3], ARGV[4]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.deadlines, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local j = redis.call('HMGET', K.job .. id, 'status', 'type', 'tenant')
  if j[1] == 'queued' or j[1] == 'scheduled' then
    expire(id, now, maxlen, ttl)
    for _, v in ipairs({id, j[1], j[2], j[3] or 'default'}) do out[#out + 1] = v end
  else
    redis.call('ZREM', K.deadlines, id)
  end
end
return out
)lua";

// Replaces the queue report (queue_report.hpp) with a new one that expires unless rewritten.
// KEYS: keys::QUEUES. ARGV: ttl_s, then field/value pairs. Returns 'ok'.
inline const std::string REPORT_QUEUES = HEAD + R"lua(
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 'ok'
)lua";

}  // namespace sluice::broker::scripts
