// Running attempts, leases and delayed retries (see job_table.hpp).
#include "job_table.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::broker {

JobTable::JobTable(WorkerPool& workers, Backoff backoff, std::uint64_t seed)
    : workers_(workers), backoff_(backoff), jitter_(seed) {}

void JobTable::assign(WorkerInfo& worker, const std::string& job_id, const std::string& type, int priority) {
    workers_.assign(worker, job_id);
    running_[job_id] = Attempt{worker.identity, type, priority, 0, {}};
}

bool JobTable::started(const std::string& job_id, const std::string& identity, std::uint32_t attempt,
                       Clock::time_point lease_deadline) {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.identity != identity || it->second.attempt != 0) return false;
    it->second.attempt = attempt;
    it->second.lease_deadline = lease_deadline;
    return true;
}

void JobTable::unassign(const std::string& job_id, const std::string& identity) {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.identity != identity || it->second.attempt != 0) return;
    running_.erase(it);
    workers_.release(identity, job_id);
}

const Attempt* JobTable::current(const std::string& peer, const std::string& job_id, std::uint32_t attempt) const {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.identity != peer || it->second.attempt != attempt) return nullptr;
    return &it->second;
}

std::optional<Attempt> JobTable::finish(const std::string& peer, const std::string& job_id, std::uint32_t attempt) {
    auto it = running_.find(job_id);
    if (it == running_.end() || it->second.identity != peer || it->second.attempt != attempt) {
        // A canceled or lease-expired attempt still held the worker's slot: free it, unless
        // the slot now belongs to a newer attempt of the same job on this worker.
        if (it == running_.end() || it->second.identity != peer) workers_.release(peer, job_id);
        return std::nullopt;
    }
    Attempt done = std::move(it->second);
    running_.erase(it);
    workers_.release(peer, job_id);
    return done;
}

std::optional<Attempt> JobTable::cancel(const std::string& job_id) {
    auto it = running_.find(job_id);
    if (it == running_.end()) return std::nullopt;
    Attempt run = std::move(it->second);
    running_.erase(it);
    return run;
}

std::vector<Ended> JobTable::lose(const WorkerInfo& gone) {
    std::vector<Ended> lost;
    for (const std::string& job_id : gone.jobs) {
        auto it = running_.find(job_id);
        if (it == running_.end() || it->second.identity != gone.identity) continue;
        if (it->second.attempt > 0) lost.push_back(Ended{job_id, std::move(it->second)});
        running_.erase(it);
    }
    return lost;
}

std::vector<Ended> JobTable::expire_leases(Clock::time_point now) {
    std::vector<Ended> expired;
    for (auto it = running_.begin(); it != running_.end();) {
        if (it->second.attempt == 0 || now < it->second.lease_deadline) {
            ++it;
            continue;
        }
        expired.push_back(Ended{it->first, std::move(it->second)});
        it = running_.erase(it);
    }
    return expired;
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

std::vector<std::string> JobTable::started_jobs() const {
    std::vector<std::string> ids;
    for (const auto& [job_id, run] : running_)
        if (run.attempt > 0) ids.push_back(job_id);
    return ids;
}

std::unordered_set<std::string> JobTable::held_jobs() const {
    std::unordered_set<std::string> ids;
    for (const auto& [job_id, run] : running_) ids.insert(job_id);
    for (const auto& [due, retry] : delayed_) ids.insert(retry.job_id);
    return ids;
}

}  // namespace sluice::broker
