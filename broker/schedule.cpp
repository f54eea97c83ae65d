// The scheduled jobs and their counts (see schedule.hpp).
#include "schedule.hpp"

namespace sluice::broker {
namespace {

// Takes one from a count, erasing it at zero, so the maps hold only what is there.
template <class Map, class Key>
void take_one(Map& counts, const Key& key) {
    auto it = counts.find(key);
    if (--it->second == 0) counts.erase(it);
}

template <class Map, class Key>
std::size_t count_of(const Map& counts, const Key& key) {
    auto it = counts.find(key);
    return it == counts.end() ? 0 : it->second;
}

}  // namespace

bool Schedule::add(const std::string& job_id, const std::string& type, const std::string& tenant,
                   std::int64_t due_ms) {
    auto [it, added] = jobs_.try_emplace(job_id, Entry{type, tenant, due_.end()});
    if (!added) return false;
    it->second.due = due_.emplace(due_ms, &it->first);
    ++counts_[{type, tenant}];
    ++types_[type];
    ++tenants_[tenant];
    return true;
}

bool Schedule::remove(const std::string& job_id) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return false;
    const Entry& entry = it->second;
    due_.erase(entry.due);
    take_one(counts_, std::pair{entry.type, entry.tenant});
    take_one(types_, entry.type);
    take_one(tenants_, entry.tenant);
    jobs_.erase(it);
    return true;
}

std::optional<std::int64_t> Schedule::next_due() const {
    if (due_.empty()) return std::nullopt;
    return due_.begin()->first;
}

std::size_t Schedule::of_type(const std::string& type) const { return count_of(types_, type); }

std::size_t Schedule::of_tenant(const std::string& tenant) const { return count_of(tenants_, tenant); }

}  // namespace sluice::broker
