// Rate limits per API key (README.md, Security, "Rate limits"): one token bucket per owner (a
// key, or a tenant for requests without one). The api keeps requests per second, one table for
// every shard of an instance, so the limit holds whatever thread a connection landed on; the
// broker keeps submits per second, which it sees from every api instance. The table is bounded:
// past MAX_BUCKETS owners, the buckets idle long enough to be full again are dropped.
// Thread-safe: one mutex, held for a lookup.
#pragma once

#include "token_bucket.hpp"

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sluice {

class RateLimits {
public:
    // Buckets kept at most; past it the full ones (idle a while) are dropped.
    static constexpr std::size_t MAX_BUCKETS = 100000;

    // Takes a token from `owner`'s bucket of `per_second` (a burst of one second's worth).
    TokenBucket::Taken take(const std::string& owner, std::uint32_t per_second, TokenBucket::Clock::time_point now);

private:
    void drop_idle(TokenBucket::Clock::time_point now);

    std::mutex mutex_;
    std::unordered_map<std::string, TokenBucket> buckets_;
};

}  // namespace sluice
