// Running jobs per tenant (see running_counts.hpp).
#include "running_counts.hpp"

namespace sluice::broker {

void RunningCounts::add(const Owner& owner) { ++tenants_[owner.tenant]; }

void RunningCounts::remove(const Owner& owner) {
    auto tenant = tenants_.find(owner.tenant);
    if (tenant != tenants_.end() && --tenant->second == 0) tenants_.erase(tenant);
}

std::size_t RunningCounts::of_tenant(const std::string& tenant) const {
    auto found = tenants_.find(tenant);
    return found == tenants_.end() ? 0 : found->second;
}

}  // namespace sluice::broker
