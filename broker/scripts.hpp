// The Lua scripts behind every job state transition (schemas/PROTOCOL.md, "Redis key layout").
// Each runs atomically in Redis, checks the job's current status (and attempt, the fencing
// token) before it writes, and appends the matching event to the job's stream.
#pragma once

#include <string_view>

namespace sluice::broker::scripts {

// Shared prelude: append an event (seq from the job hash, entry id "{seq}-1"), notify the api.
#define SLUICE_LUA_PRELUDE                                                                   \
    "local function add_event(job, events, id, maxlen, now, fields)\n"                       \
    "  local seq = redis.call('HINCRBY', job, 'seq', 1)\n"                                   \
    "  local args = {'XADD', events, 'MAXLEN', '~', maxlen, seq .. '-1'}\n"                  \
    "  for i = 1, #fields do args[#args + 1] = fields[i] end\n"                              \
    "  args[#args + 1] = 'seq'; args[#args + 1] = seq\n"                                     \
    "  args[#args + 1] = 'ts'; args[#args + 1] = now\n"                                      \
    "  redis.call(unpack(args))\n"                                                           \
    "  redis.call('PUBLISH', 'sluice:notify', id)\n"                                         \
    "end\n"                                                                                  \
    "local function finish(job, events, ttl)\n"                                              \
    "  redis.call('EXPIRE', job, ttl)\n"                                                     \
    "  redis.call('EXPIRE', events, ttl)\n"                                                  \
    "end\n"

// KEYS: job, events, queue. ARGV: id, tenant, type, input, priority, max_attempts, timeout_s,
// now_ms, queue score, maxlen. Returns 'ok' or 'exists'.
inline constexpr std::string_view SUBMIT = SLUICE_LUA_PRELUDE
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end\n"
    "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'tenant', ARGV[2], 'type', ARGV[3],\n"
    "  'input', ARGV[4], 'priority', ARGV[5], 'max_attempts', ARGV[6], 'timeout_s', ARGV[7],\n"
    "  'attempts', 0, 'status', 'queued', 'created_ms', ARGV[8], 'seq', 0)\n"
    "redis.call('ZADD', KEYS[3], ARGV[9], ARGV[1])\n"
    "add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[10], ARGV[8], {'event', 'queued'})\n"
    "return 'ok'\n";

// queued -> running. KEYS: job, events, queue, running. ARGV: id, worker, now_ms, maxlen.
// Returns {'ok', attempt, input, timeout_s} or {'not_queued'}.
inline constexpr std::string_view START = SLUICE_LUA_PRELUDE
    "if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {'not_queued'} end\n"
    "local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "redis.call('HSET', KEYS[1], 'status', 'running', 'started_ms', ARGV[3], 'worker', ARGV[2])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])\n"
    "add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[3],\n"
    "  {'event', 'started', 'attempt', attempt, 'worker', ARGV[2]})\n"
    "local j = redis.call('HMGET', KEYS[1], 'input', 'timeout_s')\n"
    "return {'ok', attempt, j[1], tonumber(j[2])}\n";

// An event of a running attempt (progress, chunk). KEYS: job, events. ARGV: id, attempt,
// now_ms, maxlen, then the event's field/value pairs. Returns 'ok' or 'stale'.
inline constexpr std::string_view EVENT = SLUICE_LUA_PRELUDE
    "local j = redis.call('HMGET', KEYS[1], 'status', 'attempts')\n"
    "if j[1] ~= 'running' or j[2] ~= ARGV[2] then return 'stale' end\n"
    "local fields = {}\n"
    "for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end\n"
    "add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[3], fields)\n"
    "return 'ok'\n";

// running -> succeeded. KEYS: job, events, running. ARGV: id, attempt, now_ms, maxlen, ttl_s,
// result. Returns 'ok' or 'stale'.
inline constexpr std::string_view SUCCEED = SLUICE_LUA_PRELUDE
    "local j = redis.call('HMGET', KEYS[1], 'status', 'attempts')\n"
    "if j[1] ~= 'running' or j[2] ~= ARGV[2] then return 'stale' end\n"
    "redis.call('HSET', KEYS[1], 'status', 'succeeded', 'result', ARGV[6], 'finished_ms', ARGV[3])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[3], {'event', 'succeeded', 'result', ARGV[6]})\n"
    "finish(KEYS[1], KEYS[2], ARGV[5])\n"
    "return 'ok'\n";

// running -> queued (retryable and attempts left) or failed. KEYS: job, events, running.
// ARGV: id, attempt, now_ms, maxlen, ttl_s, error, retryable (0/1), queue score.
// Returns 'requeued', 'failed' or 'stale'.
inline constexpr std::string_view FAIL = SLUICE_LUA_PRELUDE
    "local j = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'max_attempts', 'type')\n"
    "if j[1] ~= 'running' or j[2] ~= ARGV[2] then return 'stale' end\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "if ARGV[7] == '1' and tonumber(j[2]) < tonumber(j[3]) then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[6])\n"
    "  redis.call('ZADD', 'sluice:queue:' .. j[4], ARGV[8], ARGV[1])\n"
    "  add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[3],\n"
    "    {'event', 'retrying', 'attempt', ARGV[2], 'error', ARGV[6]})\n"
    "  return 'requeued'\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[6], 'finished_ms', ARGV[3])\n"
    "add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[3],\n"
    "  {'event', 'failed', 'attempt', ARGV[2], 'error', ARGV[6]})\n"
    "finish(KEYS[1], KEYS[2], ARGV[5])\n"
    "return 'failed'\n";

// queued|running -> canceled. KEYS: job, events, running. ARGV: id, now_ms, maxlen, ttl_s.
// Returns the status it left ('queued' or 'running'), 'not_found' or 'finished'.
inline constexpr std::string_view CANCEL = SLUICE_LUA_PRELUDE
    "local j = redis.call('HMGET', KEYS[1], 'status', 'type')\n"
    "if not j[1] then return 'not_found' end\n"
    "if j[1] ~= 'queued' and j[1] ~= 'running' then return 'finished' end\n"
    "redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_ms', ARGV[2])\n"
    "redis.call('ZREM', 'sluice:queue:' .. j[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], {'event', 'canceled'})\n"
    "finish(KEYS[1], KEYS[2], ARGV[4])\n"
    "return j[1]\n";

// Broker start: every job still marked running belonged to the previous broker's workers, which
// this broker cannot fence; each goes back to its queue (or to failed when out of attempts).
// KEYS: running. ARGV: now_ms, maxlen, ttl_s. Returns the number of jobs moved.
inline constexpr std::string_view RECOVER = SLUICE_LUA_PRELUDE
    "local ids = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "for _, id in ipairs(ids) do\n"
    "  local job, events = 'sluice:job:' .. id, 'sluice:events:' .. id\n"
    "  local j = redis.call('HMGET', job, 'attempts', 'max_attempts', 'type', 'priority')\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  local err = 'broker restarted while the job was running'\n"
    "  if j[1] and tonumber(j[1]) < tonumber(j[2]) then\n"
    "    redis.call('HSET', job, 'status', 'queued', 'error', err)\n"
    "    local score = string.format('%.0f', (9 - tonumber(j[4])) * 1e13 + tonumber(ARGV[1]))\n"
    "    redis.call('ZADD', 'sluice:queue:' .. j[3], score, id)\n"
    "    add_event(job, events, id, ARGV[2], ARGV[1], {'event', 'retrying', 'attempt', j[1], 'error', err})\n"
    "  elseif j[1] then\n"
    "    redis.call('HSET', job, 'status', 'failed', 'error', err, 'finished_ms', ARGV[1])\n"
    "    add_event(job, events, id, ARGV[2], ARGV[1], {'event', 'failed', 'attempt', j[1], 'error', err})\n"
    "    finish(job, events, ARGV[3])\n"
    "  end\n"
    "end\n"
    "return #ids\n";

// The queue of one type, in run order. KEYS: queue. Returns a flat list: id, priority, ...
inline constexpr std::string_view LOAD_QUEUE =
    "local ids = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  out[#out + 1] = id\n"
    "  out[#out + 1] = redis.call('HGET', 'sluice:job:' .. id, 'priority') or '0'\n"
    "end\n"
    "return out\n";

#undef SLUICE_LUA_PRELUDE

}  // namespace sluice::broker::scripts
