// Running attempts, leases and delayed retries (see job_table.hpp).
#include "job_table.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::broker {

JobTable::JobTable(WorkerPool& workers, Backoff backoff, std::uint64_t seed)
    : workers_(workers), backoff_(backoff), jitter_(seed) {}

void JobTable::assign(WorkerInfo& worker, const std::string& job_id, const std::string& type, int priority,
                      const Owner& owner) {
    workers_.assign(worker, job_id);
    auto it = running_.find(job_id);
    if (it != running_.end()) take(it);
    running_.emplace(job_id, Running{Attempt{worker.identity, type, priority, owner, 0}, leases_.end()});
    counts_.add(owner);
}

bool JobTable::started(const std::string& job_id, const std::string& identity, std::uint32_t attempt,
                       Clock::time_point lease_deadline) {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.run.identity != identity || it->second.run.attempt != 0) return false;
    it->second.run.attempt = attempt;
    it->second.lease = leases_.emplace(lease_deadline, &it->first);
    return true;
}

void JobTable::unassign(const std::string& job_id, const std::string& identity) {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.run.identity != identity || it->second.run.attempt != 0) return;
    take(it);
    workers_.release(identity, job_id);
}

const Attempt* JobTable::current(const std::string& peer, const std::string& job_id, std::uint32_t attempt) const {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.run.identity != peer || it->second.run.attempt != attempt) return nullptr;
    return &it->second.run;
}

std::optional<Attempt> JobTable::finish(const std::string& peer, const std::string& job_id, std::uint32_t attempt) {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.run.identity != peer || it->second.run.attempt != attempt) {
        // A canceled or lease-expired attempt still held the worker's slot: free it, unless
        // the slot now belongs to a newer attempt of the same job on this worker.
        if (it == running_.end() || it->second.run.identity != peer) workers_.release(peer, job_id);
        return std::nullopt;
    }
    Attempt done = take(it).run;
    workers_.release(peer, job_id);
    return done;
}

std::optional<Attempt> JobTable::cancel(const std::string& job_id) {
    auto it = running_.find(job_id);
    if (it == running_.end()) return std::nullopt;
    return take(it).run;
}

std::vector<Ended> JobTable::lose(const WorkerInfo& gone) {
    std::vector<Ended> lost;
    for (const std::string& job_id : gone.jobs) {
        auto it = running_.find(job_id);
        if (it == running_.end() || it->second.run.identity != gone.identity) continue;
        Ended ended = take(it);
        if (ended.run.attempt > 0) lost.push_back(std::move(ended));
    }
    return lost;
}

std::vector<Ended> JobTable::expire_leases(Clock::time_point now) {
    std::vector<Ended> expired;
    while (!leases_.empty() && leases_.begin()->first <= now)
        expired.push_back(take(running_.find(*leases_.begin()->second)));
    return expired;
}

Ended JobTable::take(RunningMap::iterator it) {
    if (it->second.lease != leases_.end()) leases_.erase(it->second.lease);
    counts_.remove(it->second.run.owner);
    auto node = running_.extract(it);
    return Ended{std::move(node.key()), std::move(node.mapped().run)};
}

std::chrono::milliseconds JobTable::backoff(std::uint32_t attempt) {
    const int doublings = static_cast<int>(std::min<std::uint32_t>(attempt > 0 ? attempt - 1 : 0, 20));
    const double base = std::min<double>(static_cast<double>(backoff_.first.count()) * std::ldexp(1.0, doublings),
                                         static_cast<double>(backoff_.max.count()));
    std::uniform_real_distribution<double> jitter(0.75, 1.25);
    return std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter(jitter_)));
}

void JobTable::delay(Clock::time_point due, Delayed job) { delayed_.emplace(due, std::move(job)); }

std::vector<Delayed> JobTable::take_due(Clock::time_point now) {
    std::vector<Delayed> due;
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
        due.push_back(std::move(delayed_.begin()->second));
        delayed_.erase(delayed_.begin());
    }
    return due;
}

bool JobTable::drop_delayed(const std::string& job_id) {
    return std::erase_if(delayed_, [&](const auto& entry) { return entry.second.job_id == job_id; }) > 0;
}

std::map<std::string, std::size_t> JobTable::running_by_type() const {
    std::map<std::string, std::size_t> counts;
    for (const auto& [id, job] : running_) ++counts[job.run.type];
    return counts;
}

std::vector<std::string> JobTable::started_jobs() const {
    std::vector<std::string> ids;
    for (const auto& [job_id, running] : running_)
        if (running.run.attempt > 0) ids.push_back(job_id);
    return ids;
}

std::unordered_set<std::string> JobTable::held_jobs() const {
    std::unordered_set<std::string> ids;
    for (const auto& [job_id, run] : running_) ids.insert(job_id);
    for (const auto& [due, retry] : delayed_) ids.insert(retry.job_id);
    return ids;
}

}  // namespace sluice::broker
