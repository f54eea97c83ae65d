// The SUBMIT script (README.md, "Delivery guarantee"; schemas/PROTOCOL.md): every job a broker
// turn read, stored at once, with what the cache, single flight and flows decide for each.
// SUBMIT_BODY is its code after the settings, which the schedules' FIRE (cron_scripts.hpp) runs
// as a function. Kept apart from scripts.hpp, whose helpers (PRELUDE) it uses, for its size.
#pragma once

#include "scripts.hpp"

#include <string>

namespace sluice::broker::scripts {

// New jobs, every SUBMIT read in one turn of the broker loop at once. KEYS: none. ARGV: now_ms,
// the byte budget of each tenant, idempotency ttl_s, then SUBMIT_STRIDE per job: id, tenant,
// type, input, priority, max_attempts, timeout_s, queue score, idempotency key ('' for none: else
// the whole Redis key, keys::idempotency), request hash, API key id, concurrency key ('' for
// none: then the job hash has neither it nor its limit), concurrency limit, disconnect grace ms
// (0: none; else the job's first deadline in K.followed is now + grace), run_at_ms (0: now),
// expire_at_ms (0: never), webhook url ('' for none: then the job hash has neither it nor its
// events), webhook events (comma-joined), traceparent ('' for none), cache ttl_s (0: none),
// then the flow: parent id ('' for none: a child has one), children ids (comma-joined, '' for
// none: a flow's parent, whose children follow it in the batch), the child's on_failure ('' for
// none); then dedupe ('1': join an identical job). A flow's parent waits as `waiting_children`
// (in K.flows, out of every queue, first event `waiting_children`), and is stored with all its
// children or not at all: what refuses it (a replay, an existing id, the byte budget, counted
// for the whole flow) answers 'skipped' for each child. A job due later than now is `scheduled`
// (in K.scheduled, first event `scheduled`) instead of queued; a job with a deadline is in
// K.deadlines until it starts. A job is charged to its tenant at once: JOB_BASE_BYTES plus its
// input. With a cache ttl, a job of the same tenant, type and input that succeeded within it
// (K.cache, written by SUCCEED) answers instead, and nothing is stored; else the job keeps its
// cache key for SUCCEED.
// With dedupe, a job due now whose tenant, type and input are those of a job submitted with
// dedupe that is queued, running or waiting for its children (its leader, named by K.dedupe)
// joins it, unless that one has DEDUPE_MAX_JOINERS already: the new job is stored without its
// input, queue entry, concurrency key or deadline, in its leader's state (status, attempts, seq, the leader's
// priority, max_attempts and timeout_s), with a copy of its leader's events so far (the same
// entry ids) and history, and its id goes into the leader's `joiners`; it is charged
// JOB_BASE_BYTES and the copy. Else the job runs and, with dedupe, leads for its key.
// Returns one answer per job, in order: 'ok', 'exists', 'skipped' (a flow's child whose parent
// was not stored), {'replay' | 'conflict', original id, its
// status now ('' once expired), the job it joined ('' for none)}, {'cached', the job that
// succeeded}, {'joined', the leader, its status} or {'over_budget', bytes the tenant holds}.
// SUBMIT_BODY is the script after its settings: the schedules' FIRE (cron_scripts.hpp) runs it
// as a function, so a fired job is stored as a submitted one is.
inline const std::string SUBMIT_SETTINGS = stride(SUBMIT_STRIDE) + "local JOB_BASE_BYTES = " +
                                           std::to_string(JOB_BASE_BYTES) + "\nlocal DEDUPE_MAX_JOINERS = " +
                                           std::to_string(DEDUPE_MAX_JOINERS) + "\n";
inline const std::string SUBMIT_BODY = R"lua(
local now, budget, idem_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out, held, added = {}, {}, {}
local skip = 0  -- children still to pass over: their parent was not stored
-- Whether a job of `tenant` may join `leader` (the job a K.dedupe key names) now: its events so
-- far (XRANGE entries) and their bytes; nil when it has ended or is full.
local function joinable(leader, tenant)
  local l = redis.call('HMGET', K.job .. leader, 'status', 'tenant')
  if (l[1] ~= 'queued' and l[1] ~= 'running' and l[1] ~= 'waiting_children') or l[2] ~= tenant or
     #joiners_of(leader) >= DEDUPE_MAX_JOINERS then
    return nil
  end
  local entries, size = redis.call('XRANGE', K.events .. leader, '-', '+'), 0
  for _, entry in ipairs(entries) do
    for _, v in ipairs(entry[2]) do size = size + #v end
  end
  return entries, size
end
-- Stores the state of job `id` of `tenant` as a joiner of `leader`, from the leader's `entries`
-- (XRANGE); `webhook` is {url or false, events}. Returns the leader's status.
local function join(id, tenant, leader, entries, webhook)
  local job = K.job .. id
  local l = redis.call('HMGET', K.job .. leader, 'priority', 'max_attempts', 'timeout_s', 'seq', 'joiners',
                       unpack(MIRRORED))
  local args = {'HSET', job, 'priority', l[1], 'max_attempts', l[2], 'timeout_s', l[3], 'seq', l[4], 'joined', leader}
  for k, field in ipairs(MIRRORED) do
    if l[5 + k] then args[#args + 1] = field; args[#args + 1] = l[5 + k] end
  end
  redis.call(unpack(args))
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    redis.call('XADD', K.events .. id, entry[1], unpack(fields))
    local f = {}
    for k = 1, #fields, 2 do f[fields[k]] = fields[k + 1] end
    webhook_deliveries(id, f.event, f.seq, f.ts, {tenant, webhook[1], webhook[2]})
  end
  local history = redis.call('LRANGE', K.history .. leader, 0, -1)
  if #history > 0 then redis.call('RPUSH', K.history .. id, unpack(history)) end
  redis.call('HSET', K.job .. leader, 'joiners', l[5] and l[5] .. ' ' .. id or id)
  return l[6]
end
-- Stores what a new job keeps of its own submit (SUBMIT_STRIDE arguments from ARGV[i]) besides
-- its hash's first fields, whether it runs or joins: its on_disconnect grace, webhook,
-- traceparent and cache key, its place in the tenant's listing and its Idempotency-Key.
-- (The hash's fields go in one HSET per branch rather than through a table: SUBMIT is the hot
-- path, and a table and unpack() per job cost it 4%.)
local function store(i, cache_key, cache_ttl)
  local id, tenant, idem = ARGV[i], ARGV[i + 1], ARGV[i + 8]
  local job = K.job .. id
  local grace = tonumber(ARGV[i + 13])
  if grace > 0 then
    redis.call('HSET', job, 'disconnect_grace_ms', grace)
    redis.call('ZADD', K.followed, string.format('%.0f', tonumber(now) + grace), id)
  end
  if ARGV[i + 16] ~= '' then
    redis.call('HSET', job, 'webhook_url', ARGV[i + 16], 'webhook_events', ARGV[i + 17])
  end
  if ARGV[i + 18] ~= '' then redis.call('HSET', job, 'traceparent', ARGV[i + 18]) end
  if cache_key then redis.call('HSET', job, 'cache_key', cache_key, 'cache_ttl_s', cache_ttl) end
  redis.call('ZADD', K.jobs .. tenant, now, id)
  if idem ~= '' then redis.call('SET', idem, ARGV[i + 9] .. ' ' .. id, 'EX', idem_ttl) end
end
for i = 4, #ARGV, STRIDE do
  local id, tenant, type, idem, hash = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 8], ARGV[i + 9]
  local children = ARGV[i + 21]
  local job = K.job .. id
  local prior = idem ~= '' and redis.call('GET', idem)
  local cache_ttl = tonumber(ARGV[i + 19])
  -- Single flight is for jobs due now: a scheduled one runs when it is due.
  local dedupe = ARGV[i + 23] == '1' and tonumber(ARGV[i + 14]) <= tonumber(now)
  -- A type holds no newline (names.hpp), so type and input cannot run into each other.
  local digest = (cache_ttl > 0 or dedupe) and redis.sha1hex(type .. '\n' .. ARGV[i + 3])
  local cache_key = cache_ttl > 0 and K.cache .. tenant .. ':' .. digest
  local dedupe_key = dedupe and K.dedupe .. tenant .. ':' .. digest
  local hit = cache_key and redis.call('GET', cache_key)
  local leader = dedupe_key and redis.call('GET', dedupe_key)
  -- Only with a leader: SUBMIT is the hot path, and a plain job makes no call for it.
  local entries, copied
  if leader then entries, copied = joinable(leader, tenant) end
  local bytes = JOB_BASE_BYTES + (entries and copied or #ARGV[i + 3])
  local flow_size, flow_bytes = 0, bytes
  if children ~= '' then
    flow_size = math.floor(#children / 37) + 1  -- ids are 36-character UUIDs, comma-joined
    for c = 1, flow_size do flow_bytes = flow_bytes + JOB_BASE_BYTES + #ARGV[i + c * STRIDE + 3] end
  end
  if not held[tenant] then
    held[tenant] = tonumber(redis.call('HGET', K.tenant_bytes, tenant) or '0')
    added[tenant] = 0
  end
  if skip > 0 then
    skip = skip - 1
    out[#out + 1] = 'skipped'
  elseif prior then
    local prior_hash, original = string.match(prior, '^(%S*) (%S+)$')
    local o = redis.call('HMGET', K.job .. original, 'status', 'joined')
    out[#out + 1] = {prior_hash == hash and 'replay' or 'conflict', original, o[1] or '', o[2] or ''}
  elseif hit and redis.call('HGET', K.job .. hit, 'status') == 'succeeded' then
    out[#out + 1] = {'cached', hit}
  elseif redis.call('EXISTS', job) == 1 then
    out[#out + 1] = 'exists'
  elseif held[tenant] + flow_bytes > budget then
    out[#out + 1] = {'over_budget', string.format('%d', held[tenant])}
  elseif entries then
    held[tenant] = held[tenant] + bytes
    added[tenant] = added[tenant] + bytes
    redis.call('HSET', job, 'id', id, 'tenant', tenant, 'type', type, 'created_ms', now, 'bytes', bytes,
               'charged', bytes, 'key_id', ARGV[i + 10])
    store(i, cache_key, cache_ttl)
    local status = join(id, tenant, leader, entries, {ARGV[i + 16] ~= '' and ARGV[i + 16] or false, ARGV[i + 17]})
    out[#out + 1] = {'joined', leader, status}
  else
    held[tenant] = held[tenant] + bytes
    added[tenant] = added[tenant] + bytes
    redis.call('HSET', job, 'id', id, 'tenant', tenant, 'type', type, 'input', ARGV[i + 3],
      'priority', ARGV[i + 4], 'max_attempts', ARGV[i + 5], 'timeout_s', ARGV[i + 6],
      'attempts', 0, 'redeliveries', 0, 'status', 'queued', 'created_ms', now, 'seq', 1,
      'bytes', bytes, 'charged', bytes, 'key_id', ARGV[i + 10])
    store(i, cache_key, cache_ttl)
    if ARGV[i + 11] ~= '' then
      redis.call('HSET', job, 'concurrency_key', ARGV[i + 11], 'concurrency_limit', ARGV[i + 12])
    end
    if dedupe_key then
      redis.call('SET', dedupe_key, id)
      redis.call('HSET', job, 'dedupe_key', dedupe_key)
    end
    local run_at, expire_at = ARGV[i + 14], ARGV[i + 15]
    if expire_at ~= '0' then
      redis.call('HSET', job, 'expire_at_ms', expire_at)
      redis.call('ZADD', K.deadlines, expire_at, id)
    end
    if ARGV[i + 20] ~= '' then redis.call('HSET', job, 'parent', ARGV[i + 20], 'on_failure', ARGV[i + 22]) end
    local first = 'queued'
    if children ~= '' then
      first = 'waiting_children'
      redis.call('HSET', job, 'status', first, 'children', children)
      redis.call('SADD', K.flows, id)
    elseif tonumber(run_at) > tonumber(now) then
      first = 'scheduled'
      redis.call('HSET', job, 'status', first, 'run_at_ms', run_at)
      redis.call('ZADD', K.scheduled, run_at, id)
    else
      redis.call('ZADD', K.queue .. type, ARGV[i + 7], id)
    end
    -- The first event, written directly: a new stream needs no trimming, and nobody can be
    -- watching a job before its id is given out, so there is no notice to publish.
    redis.call('XADD', K.events .. id, '1-1', 'event', first, 'seq', 1, 'ts', now)
    -- The job's tenant and webhook as just written: no need to read them back.
    webhook_deliveries(id, first, 1, now, {tenant, ARGV[i + 16] ~= '' and ARGV[i + 16] or false, ARGV[i + 17]})
    out[#out + 1] = 'ok'
  end
  if out[#out] ~= 'ok' then skip = flow_size end
end
for tenant, bytes in pairs(added) do
  if bytes > 0 then redis.call('HINCRBY', K.tenant_bytes, tenant, bytes) end
end
return out
)lua";
inline const std::string SUBMIT = PRELUDE + SUBMIT_SETTINGS + SUBMIT_BODY;

}  // namespace sluice::broker::scripts
