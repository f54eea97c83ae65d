// In-memory priority queues per job type (see job_queue.hpp).
#include "job_queue.hpp"

#include <fmt/format.h>

namespace sluice::broker {

double queue_score(int priority, std::int64_t enqueue_ms) {
    return static_cast<double>(MAX_PRIORITY - priority) * 1e13 + static_cast<double>(enqueue_ms);
}

std::string queue_score_arg(int priority, std::int64_t enqueue_ms) {
    return fmt::format("{:.0f}", queue_score(priority, enqueue_ms));
}

bool JobQueues::push(const std::string& type, const std::string& job_id, int priority) {
    if (contains(job_id)) return false;
    const int rank = MAX_PRIORITY - priority;
    const std::uint64_t order = next_order_++;
    queues_[type].insert(Entry{rank, order, job_id});
    index_.emplace(job_id, Location{type, rank, order});
    return true;
}

std::optional<JobQueues::Popped> JobQueues::pop(const std::string& type) {
    auto it = queues_.find(type);
    if (it == queues_.end() || it->second.empty()) return std::nullopt;
    Popped next{it->second.begin()->job_id, MAX_PRIORITY - it->second.begin()->rank};
    it->second.erase(it->second.begin());
    if (it->second.empty()) queues_.erase(it);
    index_.erase(next.job_id);
    return next;
}

bool JobQueues::remove(const std::string& job_id) {
    auto found = index_.find(job_id);
    if (found == index_.end()) return false;
    const Location& where = found->second;
    auto queue = queues_.find(where.type);
    queue->second.erase(Entry{where.rank, where.order, job_id});
    if (queue->second.empty()) queues_.erase(queue);
    index_.erase(found);
    return true;
}

std::size_t JobQueues::depth(const std::string& type) const {
    auto it = queues_.find(type);
    return it == queues_.end() ? 0 : it->second.size();
}

std::vector<std::string> JobQueues::nonempty_types() const {
    std::vector<std::string> types;
    types.reserve(queues_.size());
    for (const auto& [type, queue] : queues_) types.push_back(type);
    return types;
}

}  // namespace sluice::broker
