// In-memory job queues per type, split by tenant and concurrency key (see job_queue.hpp).
#include "job_queue.hpp"

#include <fmt/format.h>

namespace sluice::broker {

double queue_score(int priority, std::int64_t enqueue_ms) {
    return static_cast<double>(MAX_PRIORITY - priority) * 1e13 + static_cast<double>(enqueue_ms);
}

std::string queue_score_arg(int priority, std::int64_t enqueue_ms) {
    return fmt::format("{:.0f}", queue_score(priority, enqueue_ms));
}

JobQueues::JobQueues(QueuePolicy policy) : policy_(std::move(policy)) {}

bool JobQueues::push(const std::string& type, const std::string& job_id, int priority, const Owner& owner,
                     std::int64_t enqueued_ms) {
    if (contains(job_id)) return false;
    auto queue = types_.try_emplace(type).first;
    auto tenant = join(queue->second, owner.tenant);
    auto lane = tenant->second.lanes.try_emplace(owner.concurrency_key).first;
    const Place place{MAX_PRIORITY - priority, next_order_++};
    unlist(tenant->second, lane);
    lane->second.jobs.emplace(place, Waiting{job_id, owner.concurrency_limit, enqueued_ms});
    list(tenant->second, lane);
    tenant->second.enqueued.insert(enqueued_ms);
    ++queue->second.depth;
    ++tenant_depths_[owner.tenant];
    index_.emplace(job_id, Location{queue, tenant, lane, place});
    return true;
}

JobQueues::Tenants::iterator JobQueues::join(TypeQueue& queue, const std::string& name) {
    auto [tenant, added] = queue.tenants.try_emplace(name);
    if (!added) return tenant;
    if (auto weight = policy_.weights.find(name); weight != policy_.weights.end()) tenant->second.weight = weight->second;
    // Before the tenant whose turn it is: the newcomer waits for at most one turn of each other.
    if (queue.ring.empty()) queue.turn = tenant->second.turn = queue.ring.insert(queue.ring.end(), name);
    else tenant->second.turn = queue.ring.insert(queue.turn, name);
    return tenant;
}

void JobQueues::next_turn(TypeQueue& queue) {
    queue.served = 0;
    if (++queue.turn == queue.ring.end()) queue.turn = queue.ring.begin();
}

void JobQueues::unlist(TenantQueue& tenant, Lanes::iterator lane) {
    if (!lane->second.parked && !lane->second.jobs.empty()) tenant.heads.erase(lane->second.jobs.begin()->first);
}

void JobQueues::list(TenantQueue& tenant, Lanes::iterator lane) {
    if (!lane->second.parked && !lane->second.jobs.empty()) tenant.heads.emplace(lane->second.jobs.begin()->first, lane);
}

bool JobQueues::may_run(const std::string& tenant, const RunningCounts& running) const {
    return policy_.tenant_max_running == NO_LIMIT || running.of_tenant(tenant) < policy_.tenant_max_running;
}

std::optional<JobQueues::Lanes::iterator> JobQueues::next_lane(Types::iterator queue, Tenants::iterator tenant,
                                                                const RunningCounts& running) {
    if (!may_run(tenant->first, running)) return std::nullopt;
    TenantQueue& jobs = tenant->second;
    while (!jobs.heads.empty()) {
        const Lanes::iterator lane = jobs.heads.begin()->second;
        const std::string& key = lane->first;
        if (key.empty() || running.of_key(tenant->first, key) < lane->second.jobs.begin()->second.concurrency_limit)
            return lane;
        park(queue, tenant, lane);
    }
    return std::nullopt;
}

void JobQueues::park(Types::iterator queue, Tenants::iterator tenant, Lanes::iterator lane) {
    unlist(tenant->second, lane);
    lane->second.parked = true;
    parked_[KeyRef{tenant->first, lane->first}].insert(queue->first);
}

std::optional<JobQueues::Popped> JobQueues::pop(const std::string& type, const RunningCounts& running,
                                                 const Admit& admit) {
    auto queue = types_.find(type);
    if (queue == types_.end()) return std::nullopt;
    TypeQueue& q = queue->second;
    for (std::size_t passed = 0; passed < q.ring.size(); ++passed) {
        auto tenant = q.tenants.find(*q.turn);
        const auto lane = admit && !admit(tenant->first) ? std::nullopt : next_lane(queue, tenant, running);
        if (!lane) {
            next_turn(q);
            continue;
        }
        const auto first = (*lane)->second.jobs.begin();
        Popped next{first->second.job_id, MAX_PRIORITY - first->first.first,
                    Owner{tenant->first, (*lane)->first, first->second.concurrency_limit}, first->second.enqueued_ms};
        const Location where{queue, tenant, *lane, first->first};
        // The turn moves on before erase(), which may take the tenant (and the type) away.
        if (++q.served >= tenant->second.weight) next_turn(q);
        index_.erase(next.job_id);
        erase(where);
        return next;
    }
    return std::nullopt;
}

void JobQueues::wake(const KeyRef& key) {
    auto parked = parked_.find(key);
    if (parked == parked_.end()) return;
    for (const std::string& type : parked->second) {
        TenantQueue& tenant = types_.at(type).tenants.at(key.first);
        const auto lane = tenant.lanes.find(key.second);
        lane->second.parked = false;
        list(tenant, lane);
    }
    parked_.erase(parked);
}

bool JobQueues::remove(const std::string& job_id) {
    auto found = index_.find(job_id);
    if (found == index_.end()) return false;
    const Location where = found->second;
    index_.erase(found);
    erase(where);
    return true;
}

void JobQueues::erase(const Location& where) {
    TypeQueue& queue = where.type->second;
    TenantQueue& tenant = where.tenant->second;
    Lane& lane = where.lane->second;
    unlist(tenant, where.lane);
    const auto job = lane.jobs.find(where.place);
    tenant.enqueued.erase(tenant.enqueued.find(job->second.enqueued_ms));
    lane.jobs.erase(job);
    list(tenant, where.lane);
    --queue.depth;
    if (auto count = tenant_depths_.find(where.tenant->first); --count->second == 0) tenant_depths_.erase(count);
    if (!lane.jobs.empty()) return;
    if (lane.parked) {
        auto parked = parked_.find(KeyRef{where.tenant->first, where.lane->first});
        parked->second.erase(where.type->first);
        if (parked->second.empty()) parked_.erase(parked);
    }
    tenant.lanes.erase(where.lane);
    if (!tenant.lanes.empty()) return;
    if (queue.turn == tenant.turn) next_turn(queue);
    queue.ring.erase(tenant.turn);
    queue.tenants.erase(where.tenant);
    if (queue.tenants.empty()) types_.erase(where.type);
}

std::size_t JobQueues::depth(const std::string& type) const {
    auto it = types_.find(type);
    return it == types_.end() ? 0 : it->second.depth;
}

std::size_t JobQueues::tenant_depth(const std::string& tenant) const {
    auto it = tenant_depths_.find(tenant);
    return it == tenant_depths_.end() ? 0 : it->second;
}

std::vector<JobQueues::Backlog> JobQueues::backlog() const {
    std::vector<Backlog> out;
    for (const auto& [type, queue] : types_)
        for (const auto& [name, tenant] : queue.tenants)
            out.push_back(Backlog{type, name, tenant.enqueued.size(), *tenant.enqueued.begin()});
    return out;
}

std::vector<std::string> JobQueues::nonempty_types() const {
    std::vector<std::string> types;
    types.reserve(types_.size());
    for (const auto& [type, queue] : types_) types.push_back(type);
    return types;
}

}  // namespace sluice::broker
