// A token bucket (README.md, Security, "Rate limits"): `rate` tokens a second, holding at most
// `burst`, starting full. The api keeps one per API key for requests, the broker one per key
// for submits (it sees every submit of every api instance, so that limit holds across them).
// Pure: the caller passes the time. Not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace sluice {

class TokenBucket {
public:
    using Clock = std::chrono::steady_clock;

    // What take() found: whether a token was taken, what is left, and how long until the next
    // token (0 when one is there) and until the bucket is full again: RateLimit-Remaining and
    // RateLimit-Reset, Retry-After.
    struct Taken {
        bool ok = false;
        std::uint32_t remaining = 0;
        std::chrono::milliseconds retry_after{0};
        std::chrono::milliseconds full_after{0};
    };

    TokenBucket(double rate, double burst, Clock::time_point now) : rate_(rate), burst_(burst), tokens_(burst), at_(now) {}

    Taken take(Clock::time_point now) {
        refill(now);
        Taken taken;
        taken.ok = tokens_ >= 1.0;
        if (taken.ok) tokens_ -= 1.0;
        taken.remaining = static_cast<std::uint32_t>(tokens_);
        taken.retry_after = taken.ok ? std::chrono::milliseconds(0) : until(1.0);
        taken.full_after = until(burst_);
        return taken;
    }

    // Changes the rate and burst (a key's limit was edited); the tokens held stay, capped.
    void set(double rate, double burst) {
        rate_ = rate;
        burst_ = burst;
        tokens_ = std::min(tokens_, burst_);
    }

    // Whether the bucket will be full at `now`: it holds nothing a new bucket would not.
    bool full(Clock::time_point now) const {
        const double idle = now > at_ ? std::chrono::duration<double>(now - at_).count() : 0.0;
        return tokens_ + rate_ * idle >= burst_;
    }

    double rate() const { return rate_; }
    double burst() const { return burst_; }

private:
    void refill(Clock::time_point now) {
        if (now > at_) {
            tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - at_).count());
            at_ = now;
        }
    }

    // Time until the bucket holds `level` tokens, rounded up to a millisecond.
    std::chrono::milliseconds until(double level) const {
        if (tokens_ >= level) return std::chrono::milliseconds(0);
        return std::chrono::milliseconds(static_cast<std::int64_t>((level - tokens_) / rate_ * 1000.0 + 0.999));
    }

    double rate_, burst_, tokens_;
    Clock::time_point at_;
};

}  // namespace sluice
