// Whom a job runs for, and how many jobs of each tenant run now: what dispatch holds against
// SLUICE_TENANT_MAX_RUNNING. JobTable keeps the counts in step with the attempts it holds;
// JobQueues reads them. Not thread-safe: the broker loop thread owns it.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>

namespace sluice::broker {

// What dispatch needs to know of a job besides its id, type and priority.
struct Owner {
    std::string tenant;
};

class RunningCounts {
public:
    // A job of `owner` started running; its attempt ended.
    void add(const Owner& owner);
    void remove(const Owner& owner);

    // Jobs of `tenant` running now.
    std::size_t of_tenant(const std::string& tenant) const;

private:
    std::unordered_map<std::string, std::size_t> tenants_;  // only tenants with running jobs
};

}  // namespace sluice::broker
