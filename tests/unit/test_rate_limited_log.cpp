// Rate-limited warnings on a fake clock: the first of a kind per period is logged with its
// details, the rest become one summary line at the end of the period; kinds do not mix.
#include "rate_limited_log.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using sluice::log::RateLimited;

namespace {

const RateLimited::Clock::time_point T0{};  // the fake clock's start

struct Fixture {
    std::vector<std::string> lines;
    RateLimited log{10s, [this](const std::string& line) { lines.push_back(line); }};
};

}  // namespace

TEST_CASE("a flood of one kind costs its first line and one summary per period") {
    Fixture f;
    for (int i = 0; i < 10000; ++i) f.log.warn("malformed messages from the backend", T0 + i * 1ms, "bad message {}", i);
    REQUIRE(f.lines == std::vector<std::string>{"bad message 0"});
    f.log.flush(T0 + 9999ms);
    CHECK(f.lines.size() == 1);
    f.log.flush(T0 + 10s);
    REQUIRE(f.lines.size() == 2);
    CHECK(f.lines[1] == "dropped 9999 more malformed messages from the backend in the last 10 s");
    f.log.flush(T0 + 1h);
    CHECK(f.lines.size() == 2);
    // The next one, in a new period, is logged again with its details.
    f.log.warn("malformed messages from the backend", T0 + 1h, "bad message {}", "again");
    CHECK(f.lines.back() == "bad message again");
}

TEST_CASE("a single occurrence is logged at once and needs no summary") {
    Fixture f;
    f.log.warn("stale reports", T0, "stale RESULT for job {}", "j1");
    f.log.flush(T0 + 1min);
    CHECK(f.lines == std::vector<std::string>{"stale RESULT for job j1"});
}

TEST_CASE("kinds are counted apart, and a period that ends without a flush is summed up first") {
    Fixture f;
    f.log.warn("a things", T0, "a1");
    f.log.warn("b things", T0 + 1s, "b1");
    f.log.warn("a things", T0 + 2s, "a2");
    f.log.warn("a things", T0 + 3s, "a3");
    f.log.warn("b things", T0 + 4s, "b2");
    f.log.warn("a things", T0 + 12s, "a4");  // a new period of "a": the old one is summed up first
    CHECK(f.lines == std::vector<std::string>{"a1", "b1", "dropped 2 more a things in the last 10 s", "a4"});
    f.log.flush(T0 + 12s);
    CHECK(f.lines.back() == "dropped 1 more b things in the last 10 s");
}
