// Whom a job runs for (its tenant, and the concurrency key it shares, if any), and how many jobs
// of each tenant and of each key run now: what dispatch holds against SLUICE_TENANT_MAX_RUNNING
// and a job's concurrency_limit. JobTable keeps the counts in step with the attempts it holds;
// JobQueues reads them. Not thread-safe: the broker loop thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sluice::broker {

// What dispatch needs to know of a job besides its id, type and priority.
struct Owner {
    std::string tenant;
    std::string concurrency_key;          // empty: none
    std::uint32_t concurrency_limit = 0;  // with a key: how many jobs sharing it may run at once
};

// A concurrency key, scoped by its tenant: {tenant, key}.
using KeyRef = std::pair<std::string, std::string>;

class RunningCounts {
public:
    // A job of `owner` started running; its attempt ended.
    void add(const Owner& owner);
    void remove(const Owner& owner);

    // Jobs of `tenant` running now.
    std::size_t of_tenant(const std::string& tenant) const;
    // Jobs running now that share concurrency key `key` of `tenant`.
    std::size_t of_key(const std::string& tenant, const std::string& key) const;

    // The keys whose count went down since the last call (a key once per job that ended): jobs
    // waiting on them may start now.
    std::vector<KeyRef> take_freed();

private:
    struct Tenant {
        std::size_t running = 0;
        std::unordered_map<std::string, std::size_t> keys;  // only keys with running jobs
    };
    std::unordered_map<std::string, Tenant> tenants_;  // only tenants with running jobs
    std::vector<KeyRef> freed_;
};

}  // namespace sluice::broker
