// Worker registry and credit accounting (see worker_pool.hpp).
#include "worker_pool.hpp"

#include <msgpack.hpp>

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

std::string WorkerPool::report(Clock::time_point now, std::int64_t now_ms, std::size_t limit) const {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> out(buffer);
    const std::size_t shown = std::min(limit, workers_.size());
    out.pack_map(3);
    out.pack(std::string_view("as_of_ms")).pack(now_ms);
    out.pack(std::string_view("total")).pack(workers_.size());
    out.pack(std::string_view("workers")).pack_array(static_cast<std::uint32_t>(shown));
    std::size_t i = 0;
    for (const auto& [identity, worker] : workers_) {
        if (i++ == shown) break;
        const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - worker.last_recv).count();
        out.pack_map(7);
        out.pack(std::string_view("name")).pack(worker.name);
        out.pack(std::string_view("runtime")).pack(worker.runtime);
        out.pack(std::string_view("types")).pack(worker.types);
        out.pack(std::string_view("concurrency")).pack(worker.concurrency);
        out.pack(std::string_view("running")).pack(worker.jobs.size());
        out.pack(std::string_view("last_heartbeat_ms")).pack(now_ms - silent);
        out.pack(std::string_view("leaving")).pack(worker.leaving);
    }
    return {buffer.data(), buffer.size()};
}

}  // namespace sluice::broker
