// Worker registry and credit accounting (see worker_pool.hpp).
#include "worker_pool.hpp"

namespace sluice::broker {

WorkerInfo& WorkerPool::ready(const std::string& identity, std::string name, std::string runtime,
                              const std::vector<std::string>& types, std::uint32_t concurrency,
                              Clock::time_point now) {
    WorkerInfo& worker = workers_[identity];
    worker.identity = identity;
    worker.name = std::move(name);
    worker.runtime = std::move(runtime);
    worker.types = std::set<std::string>(types.begin(), types.end());
    worker.concurrency = concurrency;
    worker.leaving = false;
    worker.last_recv = now;
    return worker;
}

WorkerInfo* WorkerPool::find(const std::string& identity) {
    auto it = workers_.find(identity);
    return it == workers_.end() ? nullptr : &it->second;
}

WorkerInfo* WorkerPool::pick(const std::string& type) {
    WorkerInfo* best = nullptr;
    for (auto& [identity, worker] : workers_) {
        if (worker.credit() == 0 || worker.types.count(type) == 0) continue;
        if (best == nullptr || worker.credit() > best->credit() ||
            (worker.credit() == best->credit() && worker.last_assigned < best->last_assigned))
            best = &worker;
    }
    return best;
}

void WorkerPool::assign(WorkerInfo& worker, const std::string& job_id) {
    worker.jobs.insert(job_id);
    worker.last_assigned = ++assignments_;
}

bool WorkerPool::release(const std::string& identity, const std::string& job_id) {
    WorkerInfo* worker = find(identity);
    return worker != nullptr && worker->jobs.erase(job_id) == 1;
}

std::vector<WorkerInfo> WorkerPool::expire(Clock::time_point deadline) {
    std::vector<WorkerInfo> gone;
    for (auto it = workers_.begin(); it != workers_.end();) {
        if (it->second.last_recv < deadline) {
            gone.push_back(std::move(it->second));
            it = workers_.erase(it);
        } else {
            ++it;
        }
    }
    return gone;
}

}  // namespace sluice::broker
