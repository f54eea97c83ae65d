// Per-kind rate-limited warnings (see rate_limited_log.hpp).
#include "rate_limited_log.hpp"

namespace sluice::log {

RateLimited::RateLimited(Clock::duration period, Sink sink) : period_(period), sink_(std::move(sink)) {}

bool RateLimited::first_of_period(std::string_view kind, Clock::time_point now) {
    auto it = periods_.find(kind);
    if (it != periods_.end() && now - it->second.start < period_) {
        ++it->second.unlogged;
        return false;
    }
    if (it != periods_.end()) summarize(it->first, it->second);
    else it = periods_.emplace(std::string(kind), Period{}).first;
    it->second = Period{now, 0};
    return true;
}

void RateLimited::flush(Clock::time_point now) {
    for (auto it = periods_.begin(); it != periods_.end();) {
        if (now - it->second.start < period_) {
            ++it;
            continue;
        }
        summarize(it->first, it->second);
        it = periods_.erase(it);
    }
}

void RateLimited::summarize(const std::string& kind, const Period& period) {
    if (period.unlogged == 0) return;
    sink_(fmt::format("dropped {} more {} in the last {} s", period.unlogged, kind,
                      std::chrono::duration_cast<std::chrono::seconds>(period_).count()));
}

}  // namespace sluice::log
