// The Lua scripts of the token budgets (budgets.hpp; PROTOCOL.md, keys sluice:budget*): each
// starts with the fence (scripts::HEAD), like every broker script.
#pragma once

#include "scripts.hpp"

namespace sluice::broker::scripts {

// Adds to one (tenant, model)'s spend in one window. KEYS: the window's key
// (keys::budget_use). ARGV: tokens to add (negative when a job used less than its estimate),
// requests to add, ttl_ms (two windows: the key outlives the window it counts). Returns the
// tokens now counted.
inline const std::string BUDGET_SPEND = HEAD + R"lua(
redis.call('HINCRBY', KEYS[1], 'requests', ARGV[2])
local tokens = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tokens
)lua";

// Pauses a model until `until_ms` (wall clock), unless a later pause of it is stored. KEYS:
// keys::MODEL_PAUSES. ARGV: model, until_ms, ttl_ms (the hash's: the longest pause). Returns 1.
inline const std::string MODEL_PAUSE = HEAD + R"lua(
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
if tonumber(ARGV[2]) > held then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

// Reads every budget and its spend in one window, and the paused models. KEYS: none. ARGV: the
// budgets hash (keys::BUDGETS), the prefix of the spend keys (keys::BUDGET_USE_PREFIX), the
// window, and at a resync the pauses hash (keys::MODEL_PAUSES). Returns two flat lists: five per
// budget (tenant, model, limits "{tokens_per_minute} {requests_per_minute}", tokens and requests
// spent in the window, 0 for none), and two per paused model (model, the wall-clock ms its pause
// ends; empty without the pauses hash).
inline const std::string BUDGET_LOAD = HEAD + R"lua(
local out = {}
local budgets = redis.call('HGETALL', ARGV[1])
for i = 1, #budgets, 2 do
  local tenant, model = string.match(budgets[i], '^(%S+) (.+)$')
  if tenant then
    local use = redis.call('HMGET', ARGV[2] .. ARGV[3] .. ':' .. tenant .. ':' .. model, 'tokens', 'requests')
    out[#out + 1] = tenant
    out[#out + 1] = model
    out[#out + 1] = budgets[i + 1]
    out[#out + 1] = use[1] or '0'
    out[#out + 1] = use[2] or '0'
  end
end
return {out, ARGV[4] and redis.call('HGETALL', ARGV[4]) or {}}
)lua";

// Stride of BUDGET_LOAD's reply.
inline constexpr std::size_t BUDGET_LOAD_STRIDE = 5;

}  // namespace sluice::broker::scripts
