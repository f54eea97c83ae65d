// Which refused CURVE clients the broker logs. A refused peer keeps reconnecting (ZeroMQ retries
// every 100 ms or so) and a hostile one can make fresh keys as fast as it likes, so logging each
// refusal would flood the log. Time is cut into WINDOWs: within one, a key is logged the first
// time it is refused and at most MAX_KEYS keys are logged; every other refusal is counted, and
// the count is reported with the first refusal of a later window. Memory: at most MAX_KEYS keys.
// No sockets and no clock of its own, so tests drive it with made-up times. Not thread-safe.
#pragma once

#include "worker_pool.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_set>

namespace sluice::broker {

class RefusalLog {
public:
    // "Once per key per minute": often enough to see an attack go on, rarely enough to read.
    static constexpr std::chrono::seconds WINDOW{60};
    // Keys logged per window; past it a flood of fresh keys costs one summary line.
    static constexpr std::size_t MAX_KEYS = 100;

    struct Verdict {
        bool log_key = false;            // log this refusal, naming the key
        std::uint64_t unlogged = 0;      // refusals of an earlier window not logged (log it if > 0)
    };

    // Notes that `key` was refused at `now` (which never goes back); says what to log.
    Verdict note(const std::string& key, Clock::time_point now);

private:
    Clock::time_point window_end_{};
    std::unordered_set<std::string> logged_;  // keys logged in this window
    std::uint64_t unlogged_ = 0;              // refusals in this window not logged
};

}  // namespace sluice::broker
