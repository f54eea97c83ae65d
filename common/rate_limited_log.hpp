// Warnings about what a peer can make happen at any rate (malformed or stale messages, oversize
// reports), without letting a flood of them flood the log: per kind, the first occurrence of a
// period is logged as it happens, with its details; the rest are only counted, and at the end of
// the period one summary line says how many there were ("dropped 1234 more malformed messages
// from the backend in the last 10 s"). So 10,000 bad messages cost two lines, not 10,000. The
// clock is a parameter, so tests/unit/test_rate_limited_log.cpp runs it on a fake one.
// Not thread-safe: one owner thread.
#pragma once

#include "log.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace sluice::log {

class RateLimited {
public:
    using Clock = std::chrono::steady_clock;
    using Sink = std::function<void(const std::string&)>;

    // Ten seconds: a flood costs a line per kind every 10 s, and a single bad message is still
    // logged at once with its details.
    static constexpr std::chrono::seconds DEFAULT_PERIOD{10};

    // `sink` writes a line; by default a WARN line of this process's log.
    explicit RateLimited(Clock::duration period = DEFAULT_PERIOD,
                         Sink sink = [](const std::string& line) { write(Level::WARN, line); });

    // Counts one occurrence of `kind` (a plural noun phrase, as the summary uses it: "malformed
    // messages from the backend") at `now`; logs the formatted details when it is the first of
    // its kind in the current period.
    template <class... Args>
    void warn(std::string_view kind, Clock::time_point now, fmt::format_string<Args...> format, Args&&... args) {
        if (first_of_period(kind, now)) sink_(fmt::format(format, std::forward<Args>(args)...));
    }

    // Logs the summary of every kind whose period has ended with occurrences not logged yet, and
    // forgets those periods. Call it regularly (the broker does from its timers).
    void flush(Clock::time_point now);

private:
    struct Period {
        Clock::time_point start;
        std::uint64_t unlogged = 0;
    };

    bool first_of_period(std::string_view kind, Clock::time_point now);
    void summarize(const std::string& kind, const Period& period);

    Clock::duration period_;
    Sink sink_;
    std::map<std::string, Period, std::less<>> periods_;
};

}  // namespace sluice::log
