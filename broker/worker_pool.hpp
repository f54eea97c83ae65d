// The workers the broker knows, the job types they serve and their credit (jobs they may still
// take). Not thread-safe: the broker loop thread owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace sluice::broker {

using Clock = std::chrono::steady_clock;

struct WorkerInfo {
    std::string identity;  // ZMQ routing id on the backend socket
    std::string name;
    std::string runtime;
    std::set<std::string> types;
    std::uint32_t concurrency = 0;
    std::set<std::string> jobs;  // job ids it holds; its credit is concurrency - jobs.size()
    Clock::time_point last_recv{};
    Clock::time_point last_send{};
    std::uint64_t last_assigned = 0;  // assignment counter value at its last job
    bool leaving = false;  // said DISCONNECT: finishing the jobs it holds, takes no new ones

    std::uint32_t credit() const {
        if (leaving || jobs.size() >= concurrency) return 0;
        return concurrency - static_cast<std::uint32_t>(jobs.size());
    }
};

class WorkerPool {
public:
    // Registers a worker, or refreshes one that sent READY again (its jobs are kept, and a
    // leaving worker that says READY takes jobs again).
    // Returns the stored record.
    WorkerInfo& ready(const std::string& identity, std::string name, std::string runtime,
                      const std::vector<std::string>& types, std::uint32_t concurrency,
                      Clock::time_point now);

    // Returns the worker with this identity, or nullptr.
    WorkerInfo* find(const std::string& identity);

    // Picks who runs the next job of `type`: the worker serving it with the most free credit,
    // the least recently assigned one on a tie. Returns nullptr when no worker has credit.
    WorkerInfo* pick(const std::string& type);

    // Takes one credit of `worker` for `job_id`.
    void assign(WorkerInfo& worker, const std::string& job_id);

    // Gives the credit for `job_id` back. Returns false if the worker did not hold the job.
    bool release(const std::string& identity, const std::string& job_id);

    // Removes and returns every worker silent since before `deadline`.
    std::vector<WorkerInfo> expire(Clock::time_point deadline);

    std::map<std::string, WorkerInfo>& all() { return workers_; }

    // What GET /v1/workers shows (keys::WORKERS), as msgpack: {"as_of_ms", "total", "workers":
    // [{"name", "runtime", "types", "concurrency", "running", "last_heartbeat_ms", "leaving"}]},
    // the first `limit` workers by routing id. `now_ms` is `now` on the wall clock.
    std::string report(Clock::time_point now, std::int64_t now_ms, std::size_t limit) const;

private:
    std::map<std::string, WorkerInfo> workers_;
    std::uint64_t assignments_ = 0;
};

}  // namespace sluice::broker
