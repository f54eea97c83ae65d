// The scripts of the broker lease (README.md, "A standby broker"; keys::LEADER, keys::EPOCH):
// the only broker scripts without the fence (scripts::HEAD), since they are how a broker gets
// and keeps its fencing token. Each takes the broker's id or token and the lease's time to live
// in ms.
#pragma once

#include "scripts.hpp"

#include <string>

namespace sluice::broker::scripts {

// Takes the lease when nobody holds it, or when a broker of the same id holds it (this broker,
// restarted: its old process is gone or, if only paused, is fenced out by the new epoch).
// ARGV: broker id, ttl_ms. Returns {1, token} (token "EPOCH ID", a new epoch) or {0, holder's token}.
inline const std::string CAMPAIGN = key_names() + R"lua(
local holder = redis.call('GET', K.leader)
if holder and string.match(holder, '^%d+ (.*)$') ~= ARGV[1] then return {0, holder} end
local token = redis.call('INCR', K.epoch) .. ' ' .. ARGV[1]
redis.call('SET', K.leader, token, 'PX', ARGV[2])
return {1, token}
)lua";

// Extends the lease of `token`. A lease that ran out while no other broker took it (Redis was
// out of reach a while, or this broker was paused) is taken back under the same token: the
// epoch counter shows nobody led in between. ARGV: token, ttl_ms. Returns 1 (still the leader)
// or 0 (another broker leads, or led since: step down).
inline const std::string RENEW = key_names() + R"lua(
local holder = redis.call('GET', K.leader)
if holder == ARGV[1] or (not holder and redis.call('GET', K.epoch) == string.match(ARGV[1], '^(%d+) ')) then
  redis.call('SET', K.leader, ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
)lua";

// Gives the lease up at a clean shutdown, so a standby takes over at its next campaign instead
// of after the lease's time to live. ARGV: token. Returns 1 if it was this broker's, else 0.
inline const std::string RESIGN = key_names() + R"lua(
if redis.call('GET', K.leader) ~= ARGV[1] then return 0 end
redis.call('DEL', K.leader)
return 1
)lua";

}  // namespace sluice::broker::scripts
