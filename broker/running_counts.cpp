// Running jobs per tenant and per concurrency key (see running_counts.hpp).
#include "running_counts.hpp"

namespace sluice::broker {

void RunningCounts::add(const Owner& owner) {
    Tenant& tenant = tenants_[owner.tenant];
    ++tenant.running;
    if (!owner.concurrency_key.empty()) ++tenant.keys[owner.concurrency_key];
}

void RunningCounts::remove(const Owner& owner) {
    auto tenant = tenants_.find(owner.tenant);
    if (tenant == tenants_.end()) return;
    if (!owner.concurrency_key.empty()) {
        auto key = tenant->second.keys.find(owner.concurrency_key);
        if (key != tenant->second.keys.end() && --key->second == 0) tenant->second.keys.erase(key);
        freed_.emplace_back(owner.tenant, owner.concurrency_key);
    }
    if (--tenant->second.running == 0) tenants_.erase(tenant);
}

std::size_t RunningCounts::of_tenant(const std::string& tenant) const {
    auto found = tenants_.find(tenant);
    return found == tenants_.end() ? 0 : found->second.running;
}

std::size_t RunningCounts::of_key(const std::string& tenant, const std::string& key) const {
    auto found = tenants_.find(tenant);
    if (found == tenants_.end()) return 0;
    auto count = found->second.keys.find(key);
    return count == found->second.keys.end() ? 0 : count->second;
}

std::vector<KeyRef> RunningCounts::take_freed() {
    std::vector<KeyRef> freed;
    freed.swap(freed_);
    return freed;
}

}  // namespace sluice::broker
