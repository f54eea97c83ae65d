// The Lua scripts of flows (README.md, "Flows"; schemas/PROTOCOL.md, "Flows"): a worker's
// SPAWN, and SETTLE, which moves each parent on once its children have ended. A flow's parent
// and children are created by scripts::SUBMIT; a child's end tells its parent through
// finish() (scripts::PRELUDE).
#pragma once

#include "scripts.hpp"

#include <cstddef>
#include <string>

namespace sluice::broker::scripts {

// Arguments per child of SPAWN, after its settings.
inline constexpr std::size_t SPAWN_STRIDE = 4;
// Elements per action in SETTLE's reply.
inline constexpr std::size_t SETTLE_STRIDE = 7;

// Settles up to a limit of the parents K.settle names (each once per call): every child that
// ended since the last call adds a `child` event to its waiting parent's stream (child, type,
// status, error). A parent still waiting then
//   - fails (error_code `child_failed`, outside the dead set: its own handler never ran) once a
//     child whose on_failure is not 'ignore' ended other than succeeded; its other children are
//     canceled;
//   - is queued once every child has ended, its attempt budget counted afresh (`retry_base`: an
//     attempt that spawned children did not fail);
// and a parent that ended otherwise (canceled) has its children canceled. A parent with no
// unsettled flow left leaves K.flows. KEYS: none. ARGV: now_ms, maxlen, ttl_s, limit.
// Returns {parents in K.flows, whether K.settle holds more, actions...}, each action
// SETTLE_STRIDE elements: 'queued', id, type, priority, tenant, concurrency key, concurrency
// limit; or 'canceled', id, the status it left, and four ''.
inline const std::string SETTLE = PRELUDE + CANCEL_JOB + R"lua(
local now, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3]
local TERMINAL = {succeeded = true, failed = true, canceled = true}
local actions = {}
local function act(...)
  for _, v in ipairs({...}) do actions[#actions + 1] = v end
end
local function cancel_children(pending, reason)
  for _, child in ipairs(pending) do
    local was = cancel(child, now, maxlen, ttl, reason)
    if was ~= 'finished' and was ~= 'not_found' then act('canceled', child, was, '', '', '', '') end
  end
end
local function settle(id)
  local job = K.job .. id
  local p = redis.call('HMGET', job, 'status', 'children', 'type', 'priority', 'tenant', 'concurrency_key',
                       'concurrency_limit', 'attempts')
  if not p[1] or not p[2] then
    redis.call('SREM', K.flows, id)
    return
  end
  local pending, failed = {}, nil
  for child in string.gmatch(p[2], '[^,]+') do
    local c = redis.call('HMGET', K.job .. child, 'status', 'on_failure', 'error', 'type')
    local status = c[1] or 'expired'
    if TERMINAL[status] or status == 'expired' then
      if p[1] == 'waiting_children' and (not c[1] or redis.call('HSETNX', K.job .. child, 'reported', 1) == 1) then
        local event = {'event', 'child', 'child', child, 'type', c[4] or '', 'status', status}
        if c[3] then event[#event + 1] = 'error'; event[#event + 1] = c[3] end
        add_event(id, maxlen, now, event)
      end
      if status ~= 'succeeded' and c[2] ~= 'ignore' and not failed then failed = {child, status, c[3] or ''} end
    else
      pending[#pending + 1] = child
    end
  end
  if p[1] ~= 'waiting_children' then
    if TERMINAL[p[1]] then cancel_children(pending, 'its parent ended ' .. p[1]) end
    redis.call('SREM', K.flows, id)
  elseif failed then
    local err = string.format('child %s %s: %s', failed[1], failed[2], failed[3])
    redis.call('HSET', job, 'status', 'failed', 'error', err, 'error_code', 'child_failed', 'finished_ms', now)
    add_event(id, maxlen, now, {'event', 'failed', 'error', err, 'code', 'child_failed'})
    finish(id, now, ttl)
    cancel_children(pending, 'a sibling failed: ' .. failed[1])
    redis.call('SREM', K.flows, id)
  elseif #pending == 0 then
    redis.call('HSET', job, 'status', 'queued', 'retry_base', p[8] or 0)
    redis.call('ZADD', K.queue .. p[3], score(p[4], now), id)
    add_event(id, maxlen, now, {'event', 'queued', 'message', 'its children have ended'})
    redis.call('SREM', K.flows, id)
    act('queued', id, p[3], tonumber(p[4]) or 0, p[5] or 'default', p[6] or '', p[7] or '0')
  end
end
local ids = redis.call('LPOP', K.settle, tonumber(ARGV[4])) or {}
local seen = {}
for _, id in ipairs(ids) do
  if not seen[id] then
    seen[id] = true
    settle(id)
  end
end
local out = {redis.call('SCARD', K.flows), redis.call('LLEN', K.settle)}
for _, v in ipairs(actions) do out[#out + 1] = v end
return out
)lua";

// running -> waiting_children: the running attempt started children (ctx.spawn) and ends. The
// children are queued jobs of the parent's tenant, API key, priority, max_attempts, timeout and
// trace, charged to the tenant's byte budget; the attempt is recorded as 'spawned'. KEYS: none.
// ARGV: now_ms, maxlen, the byte budget of each tenant, parent id, attempt, then SPAWN_STRIDE
// per child: id, type, input, on_failure. Returns {'ok', tenant, priority}, {'stale'} or
// {'over_budget', bytes the tenant holds}.
inline const std::string SPAWN = PRELUDE + stride(SPAWN_STRIDE) + "local JOB_BASE_BYTES = " +
                                 std::to_string(JOB_BASE_BYTES) + "\n" + R"lua(
local now, maxlen, budget, parent, attempt = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if not is_current(parent, attempt) then return {'stale'} end
local p = redis.call('HMGET', K.job .. parent, 'tenant', 'priority', 'max_attempts', 'timeout_s', 'key_id',
                     'traceparent')
local tenant = p[1] or 'default'
local bytes = 0
for i = 6, #ARGV, STRIDE do bytes = bytes + JOB_BASE_BYTES + #ARGV[i + 2] end
local held = tonumber(redis.call('HGET', K.tenant_bytes, tenant) or '0')
if held + bytes > budget then return {'over_budget', string.format('%d', held)} end
local ids = {}
for i = 6, #ARGV, STRIDE do
  local id, type = ARGV[i], ARGV[i + 1]
  local job = K.job .. id
  ids[#ids + 1] = id
  redis.call('HSET', job, 'id', id, 'tenant', tenant, 'type', type, 'input', ARGV[i + 2], 'priority', p[2],
    'max_attempts', p[3], 'timeout_s', p[4], 'attempts', 0, 'redeliveries', 0, 'status', 'queued', 'created_ms', now,
    'seq', 1, 'bytes', JOB_BASE_BYTES + #ARGV[i + 2], 'charged', JOB_BASE_BYTES + #ARGV[i + 2], 'key_id', p[5] or '',
    'parent', parent, 'on_failure', ARGV[i + 3])
  if p[6] then redis.call('HSET', job, 'traceparent', p[6]) end
  redis.call('ZADD', K.queue .. type, score(p[2], now), id)
  redis.call('ZADD', K.jobs .. tenant, now, id)
  redis.call('XADD', K.events .. id, '1-1', 'event', 'queued', 'seq', 1, 'ts', now)
  webhook_deliveries(id, 'queued', 1, now, {tenant, false, ''})
end
redis.call('HINCRBY', K.tenant_bytes, tenant, bytes)
record(parent, now, 'spawned', '')
redis.call('ZREM', K.running, parent)
redis.call('HSET', K.job .. parent, 'status', 'waiting_children', 'children', table.concat(ids, ','))
redis.call('SADD', K.flows, parent)
add_event(parent, maxlen, now, {'event', 'waiting_children', 'children', table.concat(ids, ','), 'attempt', attempt})
return {'ok', tenant, tonumber(p[2]) or 0}
)lua";

}  // namespace sluice::broker::scripts
