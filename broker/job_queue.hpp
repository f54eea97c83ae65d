// In-memory job queues, one per job type: the broker's hot copy of the `sluice:queue:{type}`
// zsets, split by tenant for fair share. Within a type the tenants with queued jobs take turns
// (round robin, each taking its weight in jobs per turn), so one tenant's backlog holds another
// tenant's next job back by at most one turn; within a tenant, jobs run in priority order, then
// first in, first out. A tenant running as many jobs as it may is passed over, and so are the
// jobs of a concurrency key running as many jobs as its next job allows, without holding the
// tenant's other jobs or the other tenants up. Not thread-safe: the broker loop thread owns it.
#pragma once

#include "running_counts.hpp"

#include <cstdint>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sluice::broker {

// Priorities run from 0 (lowest) to 9 (highest).
inline constexpr int MAX_PRIORITY = 9;
// A count limit that never binds.
inline constexpr std::size_t NO_LIMIT = std::numeric_limits<std::size_t>::max();

// Redis zset score for a job: lower runs first (schemas/PROTOCOL.md).
double queue_score(int priority, std::int64_t enqueue_ms);
// The same score as a script argument: a whole number in decimal.
std::string queue_score_arg(int priority, std::int64_t enqueue_ms);

// How dispatch shares the workers among tenants.
struct QueuePolicy {
    // Jobs a tenant takes per turn, by tenant; 1 for a tenant not listed.
    std::map<std::string, std::uint32_t> weights;
    // Running jobs of one tenant past which its queued jobs wait.
    std::size_t tenant_max_running = NO_LIMIT;
};

class JobQueues {
public:
    explicit JobQueues(QueuePolicy policy = {});

    // Appends a job behind its tenant's others of its priority; `enqueued_ms` (wall clock) is
    // when it was queued, for the age of the oldest (backlog()). Returns false if the id is
    // already queued.
    bool push(const std::string& type, const std::string& job_id, int priority, const Owner& owner,
              std::int64_t enqueued_ms);

    struct Popped {
        std::string job_id;
        int priority;
        Owner owner;
        std::int64_t enqueued_ms;
    };
    // Whether a tenant may start a job of the type now besides the counts (its token budget:
    // budgets.hpp); an empty one admits every tenant.
    using Admit = std::function<bool(const std::string& tenant)>;
    // Removes and returns the next job of `type` that may start now: the first of the tenant
    // whose turn it is, passing over tenants that run policy.tenant_max_running jobs, tenants
    // `admit` refuses and jobs whose concurrency key runs concurrency_limit of them (as `running`
    // counts both). A tenant passed over keeps its jobs and its place in the ring. Returns
    // nullopt when no queued job of `type` may start. Costs a few map operations, plus one
    // lookup per tenant passed over; the jobs of a key found full wait aside (parked) until
    // wake() of that key, so they are not looked at again meanwhile.
    std::optional<Popped> pop(const std::string& type, const RunningCounts& running, const Admit& admit = {});

    // The jobs of concurrency key `key` may start again: a job sharing it ended.
    void wake(const KeyRef& key);

    // Removes a queued job wherever it is. Returns false if it was not queued.
    bool remove(const std::string& job_id);

    bool contains(const std::string& job_id) const { return index_.count(job_id) != 0; }
    std::size_t depth(const std::string& type) const;
    // Queued jobs of `tenant`, all types together.
    std::size_t tenant_depth(const std::string& tenant) const;
    std::size_t total() const { return index_.size(); }

    // Types that have at least one queued job.
    std::vector<std::string> nonempty_types() const;

    // The queued jobs of one type and tenant: how many, and when the one queued longest ago was.
    struct Backlog {
        std::string type;
        std::string tenant;
        std::size_t queued;
        std::int64_t oldest_ms;
    };
    // One entry per type and tenant with queued jobs, by type then tenant. Costs one step per
    // entry, not per job.
    std::vector<Backlog> backlog() const;

private:
    // Where a job stands in its tenant's run order: MAX_PRIORITY - priority (lower runs
    // first), then arrival order within the broker.
    using Place = std::pair<int, std::uint64_t>;
    struct Waiting {
        std::string job_id;
        std::uint32_t concurrency_limit;
        std::int64_t enqueued_ms;
    };
    // A tenant's queued jobs of one type that share a concurrency key (or have none), in run
    // order. Parked: its key was full when its first job was next; it waits for wake().
    struct Lane {
        std::map<Place, Waiting> jobs;
        bool parked = false;
    };
    using Lanes = std::map<std::string, Lane>;  // by concurrency key, "" for jobs without one
    struct TenantQueue {
        Lanes lanes;
        // The first job of each lane that is not parked: the tenant's next job is the first.
        std::map<Place, Lanes::iterator> heads;
        std::multiset<std::int64_t> enqueued;  // when each of its jobs was queued (ms)
        std::uint32_t weight = 1;
        std::list<std::string>::iterator turn;  // its place in its type's ring
    };
    using Tenants = std::map<std::string, TenantQueue>;
    struct TypeQueue {
        Tenants tenants;                        // those with queued jobs of the type
        std::list<std::string> ring;            // their names, in turn order
        std::list<std::string>::iterator turn;  // whose turn it is (valid while ring is not empty)
        std::uint32_t served = 0;               // jobs that tenant took in this turn
        std::size_t depth = 0;
    };
    using Types = std::map<std::string, TypeQueue>;
    struct Location {
        Types::iterator type;
        Tenants::iterator tenant;
        Lanes::iterator lane;
        Place place;
    };

    // The tenant of `queue` named `name`, added at the end of the round when new.
    Tenants::iterator join(TypeQueue& queue, const std::string& name);
    // Ends the current turn: the next tenant of the ring is served.
    static void next_turn(TypeQueue& queue);
    // Whether `tenant` may start a job now.
    bool may_run(const std::string& tenant, const RunningCounts& running) const;
    // The lane of `tenant` whose first job is its next that may start now, parking the lanes
    // whose key is full on the way; nullopt when none may.
    std::optional<Lanes::iterator> next_lane(Types::iterator queue, Tenants::iterator tenant,
                                             const RunningCounts& running);
    // Sets `lane` (of `tenant` in `queue`) aside until wake() of its key.
    void park(Types::iterator queue, Tenants::iterator tenant, Lanes::iterator lane);
    // Takes the lane's first job out of its tenant's heads, or puts it (back) in: around a
    // change of the lane, so the heads follow its first job. No-ops for a parked lane.
    static void unlist(TenantQueue& tenant, Lanes::iterator lane);
    static void list(TenantQueue& tenant, Lanes::iterator lane);
    // Takes the job at `where` out of the queues (the index aside), with the lane, tenant and
    // type it leaves empty.
    void erase(const Location& where);

    QueuePolicy policy_;
    Types types_;
    std::unordered_map<std::string, std::size_t> tenant_depths_;  // only tenants with queued jobs
    std::map<KeyRef, std::set<std::string>> parked_;  // the types in which a key's lanes are parked
    std::unordered_map<std::string, Location> index_;
    std::uint64_t next_order_ = 0;
};

}  // namespace sluice::broker
