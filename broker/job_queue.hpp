// In-memory job queues, one per job type, in run order: higher priority first, then FIFO.
// The broker's hot copy of the `sluice:queue:{type}` zsets. Not thread-safe: the broker loop
// thread owns it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::broker {

// Priorities run from 0 (lowest) to 9 (highest).
inline constexpr int MAX_PRIORITY = 9;

// Redis zset score for a job: lower runs first (schemas/PROTOCOL.md).
double queue_score(int priority, std::int64_t enqueue_ms);
// The same score as a script argument: a whole number in decimal.
std::string queue_score_arg(int priority, std::int64_t enqueue_ms);

class JobQueues {
public:
    // Appends a job behind the others of its priority. Returns false if the id is already queued.
    bool push(const std::string& type, const std::string& job_id, int priority);

    struct Popped {
        std::string job_id;
        int priority;
    };
    // Removes and returns the next job of `type`, or nullopt when that queue is empty.
    std::optional<Popped> pop(const std::string& type);

    // Removes a queued job wherever it is. Returns false if it was not queued.
    bool remove(const std::string& job_id);

    bool contains(const std::string& job_id) const { return index_.count(job_id) != 0; }
    std::size_t depth(const std::string& type) const;
    std::size_t total() const { return index_.size(); }

    // Types that have at least one queued job.
    std::vector<std::string> nonempty_types() const;

private:
    struct Entry {
        int rank;            // MAX_PRIORITY - priority: lower runs first
        std::uint64_t order; // arrival order within the broker
        std::string job_id;
        bool operator<(const Entry& other) const {
            if (rank != other.rank) return rank < other.rank;
            return order < other.order;
        }
    };
    struct Location {
        std::string type;
        int rank;
        std::uint64_t order;
    };

    std::map<std::string, std::set<Entry>> queues_;
    std::unordered_map<std::string, Location> index_;
    std::uint64_t next_order_ = 0;
};

}  // namespace sluice::broker
