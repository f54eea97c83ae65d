#include "token_bucket.hpp"

#include <doctest/doctest.h>

using sluice::TokenBucket;
using namespace std::chrono_literals;

TEST_CASE("a bucket starts full, lets a burst through, then one token per 1/rate") {
    const auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket bucket(10.0, 5.0, t0);
    for (int i = 0; i < 5; ++i) {
        const auto taken = bucket.take(t0);
        CHECK(taken.ok);
        CHECK(taken.remaining == static_cast<std::uint32_t>(4 - i));
    }
    auto refused = bucket.take(t0);
    CHECK_FALSE(refused.ok);
    CHECK(refused.remaining == 0);
    CHECK(refused.retry_after == 100ms);
    CHECK(refused.full_after == 500ms);
    CHECK_FALSE(bucket.take(t0 + 99ms).ok);
    CHECK(bucket.take(t0 + 100ms).ok);
    CHECK_FALSE(bucket.take(t0 + 150ms).ok);
    // Idle for long: full again, never more than the burst.
    for (int i = 0; i < 5; ++i) CHECK(bucket.take(t0 + 1h).ok);
    CHECK_FALSE(bucket.take(t0 + 1h).ok);
}

TEST_CASE("a clock that goes backwards adds nothing") {
    const auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket bucket(1.0, 1.0, t0);
    CHECK(bucket.take(t0).ok);
    CHECK_FALSE(bucket.take(t0 - 10s).ok);
    CHECK(bucket.take(t0 + 1s).ok);
}

TEST_CASE("set() changes the limit and keeps the tokens held, capped") {
    const auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket bucket(100.0, 100.0, t0);
    bucket.set(1.0, 2.0);
    CHECK(bucket.take(t0).ok);
    CHECK(bucket.take(t0).ok);
    CHECK_FALSE(bucket.take(t0).ok);
    CHECK(bucket.rate() == 1.0);
}

TEST_CASE("full(): a bucket idle long enough holds nothing a new one would not") {
    const auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket bucket(2.0, 2.0, t0);
    CHECK(bucket.full(t0));
    bucket.take(t0);
    CHECK_FALSE(bucket.full(t0 + 100ms));
    CHECK(bucket.full(t0 + 500ms));
}
