// How full Redis is, against its maxmemory. Redis runs with `maxmemory-policy noeviction`: past
// its maxmemory it refuses every write, results of running jobs included. So the broker reads
// INFO memory once a second and refuses new jobs (507 storage_full) once Redis is past a
// high-water mark, keeping the rest for the results and events of the jobs it already took.
// Pure (no Redis, no clock): the broker feeds it readings. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::broker {

// Redis's used_memory and maxmemory in bytes (max 0: no limit set).
struct MemoryUse {
    std::uint64_t used = 0;
    std::uint64_t max = 0;
};

// Reads used_memory and maxmemory from the text of `INFO memory`; nullopt when either is
// missing or not a number.
std::optional<MemoryUse> parse_info_memory(std::string_view info);

class StorageWatch {
public:
    // Full at `full_percent` of maxmemory (1..99); not full again below `full_percent` minus
    // RELIEF_PERCENT, so the state does not flap around the mark.
    explicit StorageWatch(int full_percent) : full_percent_(full_percent) {}

    // Takes a fresh reading. Returns true when it changed whether storage is full.
    bool update(MemoryUse use);

    // New jobs must be refused.
    bool full() const { return full_; }
    const MemoryUse& last() const { return last_; }
    int full_percent() const { return full_percent_; }

    static constexpr int RELIEF_PERCENT = 5;

private:
    int full_percent_;
    bool full_ = false;
    MemoryUse last_;
};

}  // namespace sluice::broker
