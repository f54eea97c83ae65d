// Rate limits per key (see rate_limits.hpp).
#include "rate_limits.hpp"

namespace sluice {

TokenBucket::Taken RateLimits::take(const std::string& owner, std::uint32_t per_second,
                                    TokenBucket::Clock::time_point now) {
    const double rate = per_second;
    std::lock_guard lock(mutex_);
    if (buckets_.size() >= MAX_BUCKETS) drop_idle(now);
    auto [it, added] = buckets_.try_emplace(owner, rate, rate, now);
    if (!added && it->second.rate() != rate) it->second.set(rate, rate);
    return it->second.take(now);
}

void RateLimits::drop_idle(TokenBucket::Clock::time_point now) {
    // A bucket that would be full by now has no state worth keeping: a new one starts full.
    std::erase_if(buckets_, [now](const auto& entry) { return entry.second.full(now); });
}

}  // namespace sluice
