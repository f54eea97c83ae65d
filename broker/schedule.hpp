// The broker's count of the scheduled jobs (status `scheduled`, in keys::SCHEDULED until due):
// when each is due, so the loop asks Redis to queue them (scripts::PROMOTE) only when one is,
// and how many each type and tenant holds, which count against SLUICE_MAX_QUEUE_DEPTH and
// SLUICE_TENANT_MAX_QUEUED as queued jobs do and go into the queue report. Rebuilt from Redis
// at every resync (scripts::LOAD_SCHEDULED). Not thread-safe: the broker loop thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace sluice::broker {

class Schedule {
public:
    // (type, tenant) -> scheduled jobs.
    using Counts = std::map<std::pair<std::string, std::string>, std::size_t>;

    // Holds job `job_id` until `due_ms`. Returns false (and changes nothing) if it is held.
    bool add(const std::string& job_id, const std::string& type, const std::string& tenant, std::int64_t due_ms);
    // Forgets a job (queued, canceled or expired). Returns false if it was not held.
    bool remove(const std::string& job_id);
    // When the earliest job is due (ms); nullopt when none is held.
    std::optional<std::int64_t> next_due() const;

    std::size_t size() const { return jobs_.size(); }
    std::size_t of_type(const std::string& type) const;
    std::size_t of_tenant(const std::string& tenant) const;
    const Counts& counts() const { return counts_; }

private:
    using Due = std::multimap<std::int64_t, const std::string*>;
    struct Entry {
        std::string type;
        std::string tenant;
        Due::iterator due;
    };

    std::unordered_map<std::string, Entry> jobs_;
    Due due_;  // points at the keys of jobs_, stable while their nodes live
    Counts counts_;
    std::unordered_map<std::string, std::size_t> types_, tenants_;
};

}  // namespace sluice::broker
