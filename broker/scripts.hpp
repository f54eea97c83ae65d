// The Lua scripts behind every job state transition (schemas/PROTOCOL.md, "Redis key layout").
// Each runs atomically in Redis, checks the job's current status (and attempt, the fencing
// token) before it writes, and appends the matching event to the job's stream.
// timed_scripts.hpp has those of the schedule, deadlines and the queue report.
#pragma once

#include "keys.hpp"

#include <cstddef>
#include <string>

namespace sluice::broker::scripts {

// Arguments per job of the batch scripts (SUBMIT, START, SUCCEED), after their settings
// (batches.hpp, batch_args).

inline constexpr std::size_t SUBMIT_STRIDE = 24;
inline constexpr std::size_t START_STRIDE = 3;
inline constexpr std::size_t SUCCEED_STRIDE = 3;
// Elements per job in the reply of LOAD_QUEUE.
inline constexpr std::size_t LOAD_QUEUE_STRIDE = 6;
// What a job costs its tenant's byte budget besides the bytes of its input, events and result:
// its keys, hash fields, stream and history entries and index entries. Measured: Redis's
// used_memory grows 2.4 KB per finished echo job of a few bytes, 3.3 KB besides the payload
// per job of 2 KB (bench/RESULTS.md, "Per-tenant byte budget").
inline constexpr std::size_t JOB_BASE_BYTES = 3072;
// The webhook delivery stream (keys::WEBHOOKS) holds what is owed (a deliverer deletes each entry
// it is done with) and is capped at about this many entries, a few hundred bytes each:
// deliverers that stay down while a million deliveries pile up lose the oldest rather than fill
// Redis.
inline constexpr std::size_t WEBHOOK_STREAM_MAXLEN = 1000000;
// The most jobs that may join one job (options.dedupe). Each event of the job is written once
// more per joiner, in the script that writes it: past this, an identical submit runs on its own
// rather than make one chunk of a popular job cost a thousand stream writes.
inline constexpr std::size_t DEDUPE_MAX_JOINERS = 100;

// Defines the Lua local STRIDE, the step of a batch script's loop over its jobs.
inline std::string stride(std::size_t n) { return "local STRIDE = " + std::to_string(n) + "\n"; }

// The Redis key names of common/keys.hpp as one Lua table, so the scripts build every key
// the way the api and the broker do: K.job .. id, K.queue .. type, K.running, ...
inline std::string key_names() {
    auto quoted = [](std::string_view name) {
        std::string text(1, '\'');
        text += name;
        text += '\'';
        return text;
    };
    return "local K = {job = " + quoted(keys::JOB_PREFIX) + ", events = " + quoted(keys::EVENTS_PREFIX) +
           ", history = " + quoted(keys::HISTORY_PREFIX) + ", queue = " + quoted(keys::QUEUE_PREFIX) +
           ", running = " + quoted(keys::RUNNING) + ", dead = " + quoted(keys::DEAD) +
           ", notify = " + quoted(keys::NOTIFY_CHANNEL) + ", tenant_bytes = " + quoted(keys::TENANT_BYTES) +
           ", expiring = " + quoted(keys::EXPIRING) + ", jobs = " + quoted(keys::JOBS_PREFIX) +
           ", followed = " + quoted(keys::FOLLOWED) + ", scheduled = " + quoted(keys::SCHEDULED) +
           ", deadlines = " + quoted(keys::DEADLINES) + ", webhooks = " + quoted(keys::WEBHOOKS) +
           ", webhook_attempts = " + quoted(keys::WEBHOOK_ATTEMPTS_PREFIX) +
           ", webhook_endpoints = " + quoted(keys::WEBHOOK_ENDPOINTS_PREFIX) + ", leader = " + quoted(keys::LEADER) +
           ", epoch = " + quoted(keys::EPOCH) + ", cache = " + quoted(keys::CACHE_PREFIX) +
           ", cron = " + quoted(keys::CRON_PREFIX) + ", cron_due = " + quoted(keys::CRON_DUE) +
           ", dedupe = " + quoted(keys::DEDUPE_PREFIX) + ", flows = " + quoted(keys::FLOWS) +
           ", settle = " + quoted(keys::FLOW_SETTLE) + "}\n";
}

// Every script the broker runs on job state starts with HEAD: the key names, then the fence.
// The broker passes its fencing token (the value of K.leader it set when it won the lease,
// "EPOCH ID") as the last ARGV; the script takes it off ARGV and ends with a FENCED error,
// before it has written anything, unless the token is still the lease's, or the lease ran out
// while nobody took it (K.epoch still the token's: every new leader counts it up first). So a
// broker that lost the lease (paused past it, or cut off from Redis while a standby took over)
// can change nothing a newer leader owns. The lease's own scripts (lease_scripts.hpp) are the
// only ones without it.
inline const std::string HEAD = key_names() + R"lua(
local FENCE = table.remove(ARGV)
local holder = redis.call('GET', K.leader)
if holder ~= FENCE and (holder or redis.call('GET', K.epoch) ~= string.match(tostring(FENCE), '^(%d+) ')) then
  return redis.error_reply('FENCED broker ' .. tostring(FENCE) .. ' does not hold the lease; ' .. tostring(holder) .. ' does')
end
)lua";

// One Redis command, fenced: the broker's plain writes (the job types, the reports it rewrites
// every second, input schemas) go through it. ARGV: the command and its arguments. Returns the
// command's reply.
inline const std::string CALL = HEAD + "return redis.call(unpack(ARGV))\n";

// Helpers every script starts with (after the key names).
//   joiners_of: the ids of the jobs that joined a job (options.dedupe: its `joiners` field,
//   space-separated), in the order they joined.
//   add_event: appends an event (seq from the job hash, entry id "{seq}-1") and notifies the api
//   with the event itself when its fields total at most 4 KiB, so a stream following the job
//   writes it without reading it back; a bigger one (a long result) goes as the id alone. The
//   fields' bytes are added to the job's `bytes`. The same event goes to each job that joined
//   it, under the same entry id (a joiner's stream is its leader's), and a lifecycle event
//   first copies the leader's state fields (MIRRORED) to them, so every read of a joiner sees
//   what a read of its leader does.
//   webhook_deliveries: for a lifecycle event, adds one entry to the webhook stream per target
//   that wants it: the job's own webhook ('job') and each default endpoint of its tenant (by
//   id); nothing for a job and tenant without webhooks, or for progress and chunk events. A
//   caller that knows the job's {tenant, webhook_url or false, webhook_events} passes them as
//   `j`, else they are read from the job hash.
//   record: appends one attempt to the job's history (a msgpack array, see PROTOCOL.md), and to
//   the history of each job that joined it.
//   finish: gives a job that reached a terminal state its time to live (and takes it out of
//   K.followed: nobody needs to cancel it any more), charges its tenant the bytes it gained
//   since it was last charged (`charged`), notes in K.expiring when Redis will drop it, for
//   SWEEP to give the bytes back, and takes it off K.deadlines; a flow's child tells its parent
//   (K.settle, for SETTLE). A single-flight leader frees its K.dedupe key (the next identical
//   submit runs again) and finishes its joiners alike (a joiner that succeeded with a cache ttl
//   of its own becomes its cache key's answer); a joiner that ends on its own (canceled) leaves
//   its leader's `joiners`, and the leader runs on. Returns the job's cache key and cache ttl
//   (nil without options.cache_ttl_s), read with the rest, for SUCCEED.
//   expire: a queued or scheduled job past its expire_at_ms ends failed with error_code
//   'expired', without an attempt (no history entry) and outside the dead set: nobody waits
//   for it any more.
//   lost_or_failed: ends the current attempt; requeues the job if `retry` and its budget for
//   this outcome is not spent, else marks it failed and puts it in the dead set. A `failed`
//   attempt (the handler's fault) counts against max_attempts; a `lost` one (a worker died, a
//   lease ran out) against `max_redeliveries` alone, so crashes do not use up the handler's
//   attempts, yet a job that kills every worker it reaches still ends; a `rate_limited` one
//   (the provider's 429) against `max_rate_limited` alone (its retrying event says code
//   'rate_limited'), and RETRY starts that count over. Both budgets restart when
//   the job is retried from the dead set (`retry_base`, `lost_base`). Returns 'requeued' or
//   'failed'.
inline const std::string PRELUDE = HEAD + "local WEBHOOK_STREAM_MAXLEN = " +
                                   std::to_string(WEBHOOK_STREAM_MAXLEN) + "\n" + R"lua(
local LIFECYCLE = {queued = true, started = true, retrying = true, succeeded = true, failed = true, canceled = true}
local function webhook_deliveries(id, event, seq, now, j)
  if not LIFECYCLE[event] then return end
  j = j or redis.call('HMGET', K.job .. id, 'tenant', 'webhook_url', 'webhook_events')
  local tenant = j[1] or 'default'
  local targets = {}
  if j[2] and string.find(',' .. (j[3] or '') .. ',', ',' .. event .. ',', 1, true) then targets[1] = 'job' end
  local endpoints = redis.call('HGETALL', K.webhook_endpoints .. tenant)
  for i = 1, #endpoints, 2 do
    local ok, endpoint = pcall(cjson.decode, endpoints[i + 1])
    if ok and type(endpoint) == 'table' and type(endpoint.events) == 'table' then
      for _, wanted in ipairs(endpoint.events) do
        if wanted == event then targets[#targets + 1] = endpoints[i] end
      end
    end
  end
  for _, target in ipairs(targets) do
    redis.call('XADD', K.webhooks, 'MAXLEN', '~', WEBHOOK_STREAM_MAXLEN, '*', 'job', id, 'tenant', tenant,
               'event', event, 'seq', seq, 'ts', now, 'target', target)
  end
end
local function joiners_of(id)
  local out = {}
  local list = redis.call('HGET', K.job .. id, 'joiners')
  if list then
    for joiner in string.gmatch(list, '%S+') do out[#out + 1] = joiner end
  end
  return out
end
-- Appends an event whose fields (seq and ts among them) are given to the stream of job `id` as
-- entry `entry`, counts its bytes, notifies and queues its webhook deliveries.
local function append_event(id, maxlen, now, entry, seq, fields)
  local args = {'XADD', K.events .. id, 'MAXLEN', '~', maxlen, entry}
  local notice, size = {id, entry}, 0
  for i = 1, #fields do
    local v = fields[i]
    args[#args + 1] = v
    if type(v) == 'number' then v = string.format('%d', v) end
    notice[#notice + 1] = v
    size = size + #v
  end
  redis.call(unpack(args))
  redis.call('HINCRBY', K.job .. id, 'bytes', size)
  if size > 4096 then notice = {id} end
  redis.call('PUBLISH', K.notify, cmsgpack.pack(notice))
  webhook_deliveries(id, fields[2], seq, now)
end
local MIRRORED = {'status', 'attempts', 'redeliveries', 'started_ms', 'worker', 'finished_ms', 'result', 'error',
                  'error_code'}
local function add_event(id, maxlen, now, fields)
  local seq = redis.call('HINCRBY', K.job .. id, 'seq', 1)
  fields[#fields + 1] = 'seq'; fields[#fields + 1] = seq
  fields[#fields + 1] = 'ts'; fields[#fields + 1] = now
  append_event(id, maxlen, now, seq .. '-1', seq, fields)
  local joiners = joiners_of(id)
  if #joiners == 0 then return end
  local state = (LIFECYCLE[fields[2]] or fields[2] == 'waiting_children') and
                redis.call('HMGET', K.job .. id, unpack(MIRRORED))
  for _, joiner in ipairs(joiners) do
    local job = K.job .. joiner
    local args = {'HSET', job, 'seq', seq}
    for k, field in ipairs(MIRRORED) do
      if state and state[k] then
        args[#args + 1] = field; args[#args + 1] = state[k]
        if field == 'result' then redis.call('HINCRBY', job, 'bytes', #state[k]) end
      end
    end
    redis.call(unpack(args))
    append_event(joiner, maxlen, now, seq .. '-1', seq, fields)
  end
end
local function record(id, now, outcome, err)
  local j = redis.call('HMGET', K.job .. id, 'attempts', 'worker', 'started_ms')
  local entry = cmsgpack.pack({tonumber(j[1]) or 0, j[2] or '', tonumber(j[3]) or 0,
                               tonumber(now), outcome, err})
  redis.call('RPUSH', K.history .. id, entry)
  for _, joiner in ipairs(joiners_of(id)) do redis.call('RPUSH', K.history .. joiner, entry) end
end
local function detach(leader, joiner)
  local rest = {}
  for _, other in ipairs(joiners_of(leader)) do
    if other ~= joiner then rest[#rest + 1] = other end
  end
  if #rest == 0 then
    redis.call('HDEL', K.job .. leader, 'joiners')
  else
    redis.call('HSET', K.job .. leader, 'joiners', table.concat(rest, ' '))
  end
end
local function finish(id, now, ttl)
  local job = K.job .. id
  redis.call('ZREM', K.followed, id)
  redis.call('EXPIRE', job, ttl)
  redis.call('EXPIRE', K.events .. id, ttl)
  redis.call('EXPIRE', K.history .. id, ttl)
  redis.call('EXPIRE', K.webhook_attempts .. id, ttl)
  local j = redis.call('HMGET', job, 'tenant', 'bytes', 'charged', 'cache_key', 'cache_ttl_s', 'dedupe_key',
                       'joined', 'joiners', 'parent')
  if j[9] then redis.call('RPUSH', K.settle, j[9]) end
  local bytes = tonumber(j[2]) or 0
  if j[1] and bytes > 0 then
    redis.call('HINCRBY', K.tenant_bytes, j[1], bytes - (tonumber(j[3]) or 0))
    redis.call('HSET', job, 'charged', bytes)
    redis.call('ZADD', K.expiring, string.format('%.0f', tonumber(now) + 1000 * tonumber(ttl)),
               id .. ' ' .. j[1] .. ' ' .. bytes)
  end
  redis.call('ZREM', K.deadlines, id)
  if j[6] and redis.call('GET', j[6]) == id then redis.call('DEL', j[6]) end
  if j[7] then detach(j[7], id) end
  if j[8] then
    redis.call('HDEL', job, 'joiners')
    for joiner in string.gmatch(j[8], '%S+') do
      local cache_key, cache_ttl = finish(joiner, now, ttl)
      if cache_key and redis.call('HGET', K.job .. joiner, 'status') == 'succeeded' then
        redis.call('SET', cache_key, joiner, 'EX', math.min(tonumber(cache_ttl), tonumber(ttl)))
      end
    end
  end
  return j[4], j[5]
end
local EXPIRED = 'expired: not started within expire_after_s'
local function expire(id, now, maxlen, ttl)
  local job = K.job .. id
  redis.call('HSET', job, 'status', 'failed', 'error', EXPIRED, 'error_code', 'expired', 'finished_ms', now)
  redis.call('ZREM', K.queue .. redis.call('HGET', job, 'type'), id)
  redis.call('ZREM', K.scheduled, id)
  add_event(id, maxlen, now, {'event', 'failed', 'error', EXPIRED, 'code', 'expired'})
  finish(id, now, ttl)
end
local function lost_or_failed(id, now, maxlen, ttl, err, outcome, retry, score, max_redeliveries, max_rate_limited)
  local job = K.job .. id
  local j = redis.call('HMGET', job, 'attempts', 'max_attempts', 'type', 'retry_base', 'tenant', 'lost_base', 'rate_limited')
  record(id, now, outcome, err)
  redis.call('ZREM', K.running, id)
  local lost = (tonumber(redis.call('HGET', job, 'redeliveries')) or 0) - (tonumber(j[6]) or 0)
  if outcome == 'lost' then lost = redis.call('HINCRBY', job, 'redeliveries', 1) - (tonumber(j[6]) or 0) end
  local limited = tonumber(j[7]) or 0
  if outcome == 'rate_limited' then limited = redis.call('HINCRBY', job, 'rate_limited', 1) end
  local failed = tonumber(j[1]) - (tonumber(j[4]) or 0) - lost - limited
  local left
  if outcome == 'lost' then left = lost <= tonumber(max_redeliveries)
  elseif outcome == 'rate_limited' then left = limited <= tonumber(max_rate_limited)
  else left = failed < tonumber(j[2]) end
  if not left and outcome == 'lost' then
    err = err .. string.format(' (lost %d times, max_redeliveries %d)', lost, tonumber(max_redeliveries))
  elseif not left and outcome == 'rate_limited' then
    err = err .. string.format(' (rate limited %d times, max_rate_limited %d)', limited, tonumber(max_rate_limited))
  end
  if retry and left then
    redis.call('HSET', job, 'status', 'queued', 'error', err)
    redis.call('ZADD', K.queue .. j[3], score, id)
    local deadline = redis.call('HGET', job, 'expire_at_ms')
    if deadline then redis.call('ZADD', K.deadlines, deadline, id) end
    local event = {'event', 'retrying', 'attempt', j[1], 'error', err}
    if outcome == 'rate_limited' then event[#event + 1] = 'code'; event[#event + 1] = 'rate_limited' end
    add_event(id, maxlen, now, event)
    return 'requeued'
  end
  redis.call('HSET', job, 'status', 'failed', 'error', err, 'finished_ms', now)
  local tenant_dead = K.dead .. ':' .. (j[5] or 'default')
  for _, dead in ipairs({K.dead, tenant_dead}) do
    redis.call('ZADD', dead, now, id)
    redis.call('ZREMRANGEBYSCORE', dead, '-inf', tonumber(now) - 1000 * tonumber(ttl))
  end
  add_event(id, maxlen, now, {'event', 'failed', 'attempt', j[1], 'error', err})
  finish(id, now, ttl)
  return 'failed'
end
-- The queue's zset score, as queue_score() in job_queue.cpp: higher priority first, then FIFO.
local function score(priority, now_ms)
  return string.format('%.0f', (9 - tonumber(priority)) * 1e13 + tonumber(now_ms))
end
local function is_current(id, attempt)
  local j = redis.call('HMGET', K.job .. id, 'status', 'attempts')
  return j[1] == 'running' and j[2] == attempt
end
)lua";

// queued -> running, for every job dispatched in one turn of the broker loop. KEYS: none.
// ARGV: now_ms, maxlen, lease grace ms, ttl_s, then START_STRIDE per job: id, worker, type. The
// running zset scores each job by its lease deadline (now + timeout_s + grace). A job past its
// expire_at_ms does not start: it ends failed, `expired` (the check at dispatch: no worker ever
// sees it). Returns one answer per job: {'ok', attempt, input, timeout_s, traceparent ('' for
// none), children}, {'expired'} or {'not_queued'}; `children` is empty but for a flow's parent:
// five per child, in the order given: id, type, status, result ('' for none), error.
inline const std::string START = PRELUDE + stride(START_STRIDE) + R"lua(
local now, maxlen, grace, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
for i = 5, #ARGV, STRIDE do
  local id, worker = ARGV[i], ARGV[i + 1]
  local job = K.job .. id
  local j = redis.call('HMGET', job, 'status', 'expire_at_ms')
  if j[1] ~= 'queued' then
    out[#out + 1] = {'not_queued'}
  elseif j[2] and tonumber(now) >= tonumber(j[2]) then
    expire(id, now, maxlen, ttl)
    out[#out + 1] = {'expired'}
  else
    redis.call('ZREM', K.deadlines, id)
    local attempt = redis.call('HINCRBY', job, 'attempts', 1)
    local j = redis.call('HMGET', job, 'input', 'timeout_s', 'traceparent', 'children')
    local outcomes = {}
    for child in string.gmatch(j[4] or '', '[^,]+') do
      local c = redis.call('HMGET', K.job .. child, 'type', 'status', 'result', 'error')
      for _, v in ipairs({child, c[1] or '', c[2] or 'expired', c[3] or '', c[4] or ''}) do outcomes[#outcomes + 1] = v end
    end
    redis.call('HSET', job, 'status', 'running', 'started_ms', now, 'worker', worker)
    redis.call('ZREM', K.queue .. ARGV[i + 2], id)
    local deadline = tonumber(now) + 1000 * tonumber(j[2]) + grace
    redis.call('ZADD', K.running, string.format('%.0f', deadline), id)
    add_event(id, maxlen, now, {'event', 'started', 'attempt', attempt, 'worker', worker})
    out[#out + 1] = {'ok', attempt, j[1], tonumber(j[2]), j[3] or '', outcomes}
  end
end
return out
)lua";

// An event of the running attempt (progress, chunk), tagged with the attempt, so a client
// following a stream across a retry can drop what the superseded attempt sent. KEYS: job.
// ARGV: id, attempt, now_ms, maxlen, then the event's field/value pairs. Returns 'ok' or 'stale'.
inline const std::string EVENT = PRELUDE + R"lua(
if not is_current(ARGV[1], ARGV[2]) then return 'stale' end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'attempt'; fields[#fields + 1] = ARGV[2]
add_event(ARGV[1], ARGV[4], ARGV[3], fields)
return 'ok'
)lua";

// running -> succeeded, for every RESULT read in one turn of the broker loop; a job submitted
// with a cache ttl becomes its cache key's answer for that long (at most the job's own ttl).
// KEYS: none. ARGV: now_ms, maxlen, ttl_s, then SUCCEED_STRIDE per job: id, attempt, result.
// Returns one answer per job: 'ok' or 'stale'.
inline const std::string SUCCEED = PRELUDE + stride(SUCCEED_STRIDE) + R"lua(
local now, maxlen, ttl = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, STRIDE do
  local id, result = ARGV[i], ARGV[i + 2]
  if not is_current(id, ARGV[i + 1]) then
    out[#out + 1] = 'stale'
  else
    record(id, now, 'succeeded', '')
    redis.call('HSET', K.job .. id, 'status', 'succeeded', 'result', result, 'finished_ms', now)
    redis.call('HINCRBY', K.job .. id, 'bytes', #result)
    redis.call('ZREM', K.running, id)
    add_event(id, maxlen, now, {'event', 'succeeded', 'result', result})
    local cache_key, cache_ttl = finish(id, now, ttl)
    if cache_key then redis.call('SET', cache_key, id, 'EX', math.min(tonumber(cache_ttl), tonumber(ttl))) end
    out[#out + 1] = 'ok'
  end
end
return out
)lua";

// Ends the running attempt without a result. KEYS: job. ARGV: id, attempt, now_ms, maxlen,
// ttl_s, error, outcome ('failed': the handler failed; 'lost': worker died or lease expired;
// 'rate_limited': the model provider refused the call for now, which counts against
// max_rate_limited alone, in the job's `rate_limited`), retryable (0/1), queue score,
// max_redeliveries, max_rate_limited. Returns 'requeued', 'failed' or 'stale'.
inline const std::string FAIL = PRELUDE + R"lua(
if not is_current(ARGV[1], ARGV[2]) then return 'stale' end
return lost_or_failed(ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1', ARGV[9], ARGV[10], ARGV[11])
)lua";

// scheduled|queued|running|waiting_children -> canceled, with the reason its event gives ('' for
// none); a flow's parent has SETTLE cancel its children. A job that joined another
// (options.dedupe) leaves it, which runs on; a job others joined takes them along (finish).
// Returns the status it left ('scheduled', 'queued', 'running' or 'waiting_children'),
// 'not_found' or 'finished'.
inline const std::string CANCEL_JOB = R"lua(
local function cancel(id, now, maxlen, ttl, reason)
  local job = K.job .. id
  local j = redis.call('HMGET', job, 'status', 'type', 'joined')
  if not j[1] then return 'not_found' end
  if j[1] ~= 'queued' and j[1] ~= 'running' and j[1] ~= 'scheduled' and j[1] ~= 'waiting_children' then
    return 'finished'
  end
  if j[1] == 'running' and not j[3] then record(id, now, 'canceled', reason) end
  if j[1] == 'waiting_children' then redis.call('RPUSH', K.settle, id) end
  redis.call('HSET', job, 'status', 'canceled', 'finished_ms', now)
  redis.call('ZREM', K.queue .. j[2], id)
  redis.call('ZREM', K.scheduled, id)
  redis.call('ZREM', K.running, id)
  local event = {'event', 'canceled'}
  if reason ~= '' then event = {'event', 'canceled', 'message', reason} end
  add_event(id, maxlen, now, event)
  finish(id, now, ttl)
  return j[1]
end
)lua";

// scheduled|queued|running -> canceled, on request. KEYS: job. ARGV: id, now_ms, maxlen, ttl_s.
// Returns what CANCEL_JOB's cancel() returns.
inline const std::string CANCEL = PRELUDE + CANCEL_JOB + R"lua(
return cancel(ARGV[1], ARGV[2], ARGV[3], ARGV[4], '')
)lua";

// Cancels the jobs nobody followed for their grace period (options.on_disconnect "cancel"):
// up to a limit of the K.followed entries due by now. A job others joined (options.dedupe) is
// still wanted: it runs on, and is looked at again a grace later. KEYS: none. ARGV: now_ms,
// limit, maxlen, ttl_s. Returns a flat list, two per job canceled: id, what cancel() returned.
inline const std::string ABANDON = PRELUDE + CANCEL_JOB + R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.followed, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local j = redis.call('HMGET', K.job .. id, 'disconnect_grace_ms', 'joiners')
  local grace = tonumber(j[1]) or 0
  if j[2] then
    redis.call('ZADD', K.followed, string.format('%.0f', tonumber(ARGV[1]) + math.max(grace, 1000)), id)
  else
    out[#out + 1] = id
    out[#out + 1] = cancel(id, ARGV[1], ARGV[3], ARGV[4],
                           string.format('nobody followed the job for %d s (on_disconnect)', grace / 1000))
    redis.call('ZREM', K.followed, id)
  end
end
return out
)lua";

// dead (failed) -> queued, on request. KEYS: job. ARGV: id, now_ms, maxlen.
// The attempt counter keeps counting (it is the fencing token); `retry_base` restarts the
// job's attempt budget. The job stays charged to its tenant, no longer due to expire. Its
// expire_at_ms goes: whoever retries a dead job by hand wants it run now.
// Returns {'ok', type, priority, tenant, concurrency key ('' for none), concurrency limit},
// 'not_found' or 'not_dead'.
inline const std::string RETRY = PRELUDE + R"lua(
local j = redis.call('HMGET', KEYS[1], 'status', 'type', 'priority', 'attempts', 'tenant', 'charged',
                     'concurrency_key', 'concurrency_limit', 'redeliveries')
if not j[1] then return 'not_found' end
if not redis.call('ZSCORE', K.dead, ARGV[1]) then return 'not_dead' end
redis.call('ZREM', K.dead, ARGV[1])
redis.call('ZREM', K.dead .. ':' .. (j[5] or 'default'), ARGV[1])
if j[5] and j[6] then redis.call('ZREM', K.expiring, ARGV[1] .. ' ' .. j[5] .. ' ' .. j[6]) end
redis.call('HSET', KEYS[1], 'status', 'queued', 'retry_base', j[4], 'lost_base', j[9] or 0)
redis.call('HDEL', KEYS[1], 'error', 'error_code', 'finished_ms', 'expire_at_ms', 'rate_limited')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', K.events .. ARGV[1])
redis.call('PERSIST', K.history .. ARGV[1])
redis.call('ZADD', K.queue .. j[2], score(j[3], ARGV[2]), ARGV[1])
add_event(ARGV[1], ARGV[3], ARGV[2], {'event', 'queued', 'message', 'retried from the dead set'})
return {'ok', j[2], tonumber(j[3]), j[5] or 'default', j[7] or '', j[8] or '0'}
)lua";

// Puts back every job marked running that this broker does not hold: at start (it holds none:
// they belonged to the previous broker's workers, which it cannot fence) and after Redis came
// back (a write that was in flight may or may not have landed). Their attempt ends as 'lost'.
// KEYS: none. ARGV: now_ms, maxlen, ttl_s, max_redeliveries, then the ids the broker holds.
// Returns the number of jobs put back or failed.
inline const std::string RECOVER = PRELUDE + R"lua(
local held = {}
for i = 5, #ARGV do held[ARGV[i]] = true end
local moved = 0
for _, id in ipairs(redis.call('ZRANGE', K.running, 0, -1)) do
  if not held[id] then
    moved = moved + 1
    local j = redis.call('HMGET', K.job .. id, 'status', 'priority')
    if j[1] == 'running' then
      lost_or_failed(id, ARGV[1], ARGV[2], ARGV[3], 'the broker lost track of the job (restart or Redis outage)',
                     'lost', true, score(j[2], ARGV[1]), ARGV[4])
    else
      redis.call('ZREM', K.running, id)
    end
  end
end
return moved
)lua";

// Gives back the bytes of jobs Redis has expired: takes up to a limit of the K.expiring entries
// due by now, the oldest first, subtracts each one's bytes from its tenant's count (a count that
// reaches 0 is removed) and takes the job off its tenant's listing (K.jobs). KEYS: none.
// ARGV: now_ms, limit. Returns how many it took.
inline const std::string SWEEP = HEAD + R"lua(
local due = redis.call('ZRANGEBYSCORE', K.expiring, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return 0 end
local freed = {}
for _, entry in ipairs(due) do
  local id, tenant, bytes = string.match(entry, '^(%S+) (%S+) (%d+)$')
  if tenant then
    freed[tenant] = (freed[tenant] or 0) + tonumber(bytes)
    redis.call('ZREM', K.jobs .. tenant, id)
  end
end
for tenant, bytes in pairs(freed) do
  if redis.call('HINCRBY', K.tenant_bytes, tenant, -bytes) <= 0 then redis.call('HDEL', K.tenant_bytes, tenant) end
end
redis.call('ZREMRANGEBYRANK', K.expiring, 0, #due - 1)
return #due
)lua";

// The queue of one type, in run order, with what dispatch needs of each job. KEYS: queue.
// Returns a flat list, LOAD_QUEUE_STRIDE per job: id, priority, tenant, concurrency key ('' for
// none), concurrency limit, when it was queued (ms: its score less the priority's part), ...
inline const std::string LOAD_QUEUE = HEAD + R"lua(
local out = {}
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for k = 1, #entries, 2 do
  local id = entries[k]
  local j = redis.call('HMGET', K.job .. id, 'priority', 'tenant', 'concurrency_key', 'concurrency_limit')
  out[#out + 1] = id
  out[#out + 1] = j[1] or '0'
  out[#out + 1] = j[2] or 'default'
  out[#out + 1] = j[3] or ''
  out[#out + 1] = j[4] or '0'
  out[#out + 1] = string.format('%.0f', tonumber(entries[k + 1]) % 1e13)
end
return out
)lua";

}  // namespace sluice::broker::scripts
