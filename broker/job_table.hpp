// The jobs the broker holds outside its queues: each running attempt (which worker, which
// attempt number: the fencing token, its lease deadline) and each job waiting out a retry
// backoff. No sockets and no Redis: the broker writes the transitions, this table remembers
// them, and every call takes the time it should act at, so tests drive it with a fake clock.
// It keeps the workers' credit (WorkerPool) and the running jobs of each tenant and concurrency
// key (RunningCounts) in step with the attempts. Not thread-safe: the broker loop thread owns it.
#pragma once

#include "running_counts.hpp"
#include "worker_pool.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::broker {

// How long past its timeout_s a running job's lease lasts. The worker cancels the handler at
// timeout_s itself; the grace covers its report's trip and a slow cancel before the broker
// gives up on the attempt.
inline constexpr std::chrono::milliseconds LEASE_GRACE{5000};

// A job handed to a worker: `attempt` is 0 until Redis confirmed the start.
struct Attempt {
    std::string identity;  // the worker's routing id
    std::string type;
    int priority = 0;
    Owner owner;
    std::uint32_t attempt = 0;
};

// A job taken off a worker without a result (lost worker, expired lease).
struct Ended {
    std::string job_id;
    Attempt run;
};

// A job waiting out its retry backoff before it goes back into its queue.
struct Delayed {
    std::string job_id;
    std::string type;
    int priority = 0;
    Owner owner;
};

// Retry backoff: `first` for attempt 1, doubling per attempt up to `max`, then +-25% jitter.
struct Backoff {
    std::chrono::milliseconds first{1000};
    std::chrono::milliseconds max{60000};
};

class JobTable {
public:
    // `workers` must outlive the table. `seed` feeds the backoff jitter.
    JobTable(WorkerPool& workers, Backoff backoff, std::uint64_t seed = std::random_device{}());

    // Hands `job_id` to `worker` (one of its credits) as attempt 0, waiting for its start; it
    // counts as running for `owner` from now until its attempt ends here.
    void assign(WorkerInfo& worker, const std::string& job_id, const std::string& type, int priority,
                const Owner& owner);
    // Redis recorded the start of what assign() handed out: the attempt is `attempt`, leased
    // until `lease_deadline`. Returns false (and records nothing) when the job is no longer
    // assigned to `identity` as attempt 0 (canceled or its worker lost meanwhile).
    bool started(const std::string& job_id, const std::string& identity, std::uint32_t attempt,
                 Clock::time_point lease_deadline);
    // The start was not recorded: gives the worker's credit back if the assignment still stands.
    void unassign(const std::string& job_id, const std::string& identity);

    // Returns the running attempt `peer` reports on, or nullptr if the report is stale (another
    // attempt, another worker, or the job is no longer running here).
    const Attempt* current(const std::string& peer, const std::string& job_id, std::uint32_t attempt) const;
    // Ends the reported attempt and frees the worker's credit; returns it, or nullopt if the
    // report is stale. A stale report still frees the credit its attempt held, unless the slot
    // now belongs to a newer attempt of the same job on the same worker.
    std::optional<Attempt> finish(const std::string& peer, const std::string& job_id, std::uint32_t attempt);
    // Forgets a canceled running job and returns its attempt (nullopt if not running). The
    // worker keeps its credit until it answers or dies.
    std::optional<Attempt> cancel(const std::string& job_id);

    // Takes every job running on `gone` (a worker no longer in the pool) off the table. Returns
    // the started ones (attempt > 0); an attempt 0 has its START in flight, and started() will
    // find it gone.
    std::vector<Ended> lose(const WorkerInfo& gone);
    // Takes every started attempt whose lease ended by `now` off the table and returns them,
    // earliest deadline first. Their workers keep the credit until they answer or die. Costs
    // the expired leases only, not the running jobs.
    std::vector<Ended> expire_leases(Clock::time_point now);

    // How long to wait before running a job again after attempt `attempt` failed.
    std::chrono::milliseconds backoff(std::uint32_t attempt);
    // Holds a job until `due`; take_due() gives it back.
    void delay(Clock::time_point due, Delayed job);
    // Removes and returns the delayed jobs due by `now`, earliest first.
    std::vector<Delayed> take_due(Clock::time_point now);
    // Drops a delayed job (it was canceled). Returns false if none was held.
    bool drop_delayed(const std::string& job_id);

    // The ids of the started attempts (those Redis marks running for this broker).
    std::vector<std::string> started_jobs() const;
    // The ids of every job held here, running or delayed: not to be queued again from Redis.
    std::unordered_set<std::string> held_jobs() const;
    std::size_t running() const { return running_.size(); }
    // The jobs running (or being started) now, by type. Costs one pass over them.
    std::map<std::string, std::size_t> running_by_type() const;
    // The jobs running now per tenant and per concurrency key.
    const RunningCounts& counts() const { return counts_; }
    // The concurrency keys a job of which ended since the last call (RunningCounts::take_freed).
    std::vector<KeyRef> take_freed_keys() { return counts_.take_freed(); }
    std::size_t delayed() const { return delayed_.size(); }

private:
    // Started attempts by lease deadline. Each entry points at its job's id, the key of its
    // running_ node (stable while the node lives); running_ removes the entry with the node.
    using Leases = std::multimap<Clock::time_point, const std::string*>;
    struct Running {
        Attempt run;
        Leases::iterator lease;  // leases_.end() until started
    };
    using RunningMap = std::unordered_map<std::string, Running>;

    // Removes a job from running_ (its lease and its count too) and returns its attempt.
    Ended take(RunningMap::iterator it);

    WorkerPool& workers_;
    Backoff backoff_;
    std::mt19937_64 jitter_;
    RunningMap running_;
    RunningCounts counts_;
    Leases leases_;
    std::multimap<Clock::time_point, Delayed> delayed_;
};

}  // namespace sluice::broker
