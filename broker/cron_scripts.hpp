// The Lua scripts of cron schedules (broker/cron_fire.cpp, README.md "Schedules"): the due
// schedules read, and one tick fired. Built on the prelude of scripts.hpp and fenced like every
// broker script, so only the leader fires.
#pragma once

#include "submit_scripts.hpp"

namespace sluice::broker::scripts {

// Elements per schedule in the reply of CRON_DUE.
inline constexpr std::size_t CRON_DUE_STRIDE = 7;
// The arguments of FIRE before the job's SUBMIT arguments, by position.
enum FireArg : std::size_t { FIRE_ID, FIRE_EXPECTED, FIRE_NEXT, FIRE_TICK, FIRE_MISSED, FIRE_SKIPPED, FIRE_REFUSAL, FIRE_HEAD };

// The schedules whose next tick is due by now, at most a limit of them, the earliest first. An
// id whose hash is gone (deleted) leaves K.cron_due. KEYS: none. ARGV: now_ms, limit. Returns a
// flat list, CRON_DUE_STRIDE per schedule: id, next tick (ms), cron, timezone, missed ('skip' or
// 'run_once'), the job (a SUBMIT body, msgpack), expire_after_ms ('0': none).
inline const std::string CRON_DUE = HEAD + R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.cron_due, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local h = redis.call('HMGET', K.cron .. id, 'next_tick', 'cron', 'timezone', 'missed', 'submit', 'expire_after_ms')
  if not h[1] or not h[5] then
    redis.call('ZREM', K.cron_due, id)
  else
    for _, v in ipairs({id, h[1], h[2] or '', h[3] or 'UTC', h[4] or 'run_once', h[5], h[6] or '0'}) do
      out[#out + 1] = v
    end
  end
end
return out
)lua";

// Claims the due ticks of one schedule and fires at most one of them, atomically: unless the
// schedule's next_tick is still `expected` (the tick the broker read: it was claimed already, or
// the schedule deleted), nothing is written. Else next_tick moves to `next` ('0': the cron never
// fires again, the schedule leaves K.cron_due), `skipped` ticks are counted as such, and `tick`
// ('0': none) fires: its job is stored by SUBMIT's own code (submit_scripts.hpp, SUBMIT_BODY), so it is
// indistinguishable from a submitted one but for `schedule_id`, `schedule_tick` (ms) and
// `missed_ticks` (earlier ticks it stands for, `run_once`: `missed` plus those put aside in
// `missed_pending` by earlier calls) on its hash. `missed` of a call that fires nothing goes to
// `missed_pending`. A `refusal` (the broker's admission checks: unknown type, full queue...) or
// a SUBMIT answer other than 'ok' or 'joined' (the tenant's byte budget) counts the tick as
// `refused` (and the missed ticks it stood for as skipped), with the reason in `last_error`. A
// job with options.dedupe whose previous tick's job (or an identical submitted one) is still
// queued or running joins it, as a submit would: the tick fires a job that runs nothing of its
// own. KEYS: none. ARGV: id, expected, next, tick, missed, skipped, refusal ('' for none), then,
// when `tick` fires and nothing refused it, SUBMIT's ARGV for one job (now_ms, byte budget,
// idempotency ttl_s, SUBMIT_STRIDE fields). Returns {'stale'}, {'skipped'}, {'refused', reason},
// {'ok', missed ticks} or {'joined', missed ticks, the job it joined}.
inline const std::string FIRE = PRELUDE + SUBMIT_SETTINGS + "local function submit_jobs(ARGV)\n" + SUBMIT_BODY +
                                "end\n" + R"lua(
local id, expected, next_tick, tick, missed, skipped, refusal = unpack(ARGV, 1, 7)
local key = K.cron .. id
if redis.call('HGET', key, 'next_tick') ~= expected then return {'stale'} end
redis.call('HSET', key, 'next_tick', next_tick)
if next_tick == '0' then
  redis.call('ZREM', K.cron_due, id)
else
  redis.call('ZADD', K.cron_due, next_tick, id)
end
if skipped ~= '0' then redis.call('HINCRBY', key, 'skipped', skipped) end
if tick == '0' then
  if missed ~= '0' then redis.call('HINCRBY', key, 'missed_pending', missed) end
  return {'skipped'}
end
missed = tonumber(missed) + tonumber(redis.call('HGET', key, 'missed_pending') or '0')
redis.call('HDEL', key, 'missed_pending')
redis.call('HSET', key, 'last_tick', tick)
local answer = refusal
if refusal == '' then
  local job = {}
  for i = 8, #ARGV do job[#job + 1] = ARGV[i] end
  answer = submit_jobs(job)[1]
  local joined = type(answer) == 'table' and answer[1] == 'joined' and answer[2]
  if answer == 'ok' or joined then
    local job_id = job[4]
    redis.call('HSET', K.job .. job_id, 'schedule_id', id, 'schedule_tick', tick)
    if missed > 0 then redis.call('HSET', K.job .. job_id, 'missed_ticks', missed) end
    redis.call('HINCRBY', key, 'fired', 1)
    redis.call('HSET', key, 'last_job', job_id)
    redis.call('HDEL', key, 'last_error')
    if joined then return {'joined', missed, joined} end
    return {'ok', missed}
  end
  if type(answer) == 'table' then answer = answer[1] end
  if answer == 'over_budget' then answer = 'the tenant is past its byte budget (SLUICE_TENANT_MAX_BYTES)' end
end
redis.call('HINCRBY', key, 'refused', 1)
if missed > 0 then redis.call('HINCRBY', key, 'skipped', missed) end
redis.call('HSET', key, 'last_error', answer)
return {'refused', answer}
)lua";

}  // namespace sluice::broker::scripts
