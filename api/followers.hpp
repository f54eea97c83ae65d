// The jobs this shard's clients follow (SSE streams, WebSocket subscriptions) that asked to be
// canceled once nobody follows them (options.on_disconnect "cancel"). Once a second the shard
// renews each one's deadline in K.followed to now + its grace; the broker cancels a job whose
// deadline passed (schemas/PROTOCOL.md, "Following and on_disconnect"). With several apis,
// each renews the jobs its own clients follow, and ZADD GT keeps the latest deadline.
// Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sluice::api {

class Followers {
public:
    // One follower's hold on a job; the job counts as followed here until the last Ticket of it
    // goes. A Ticket for a job without a grace holds nothing.
    class Ticket {
    public:
        Ticket() = default;
        Ticket(Ticket&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), id_(std::move(other.id_)) {}
        Ticket& operator=(Ticket&& other) noexcept;
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;
        ~Ticket() { release(); }

    private:
        friend class Followers;
        Ticket(Followers* owner, std::string id) : owner_(owner), id_(std::move(id)) {}
        void release();
        Followers* owner_ = nullptr;
        std::string id_;
    };

    // Counts a follower of job `id`, whose disconnect grace is `grace_ms` (0: the job has no
    // on_disconnect, and nothing is counted).
    Ticket follow(const std::string& id, std::uint32_t grace_ms);

    // The ZADD commands that renew every followed job's deadline at `now_ms`, at most
    // MEMBERS_PER_COMMAND jobs each; none when no job is followed.
    std::vector<std::vector<std::string>> renewals(std::int64_t now_ms) const;

    std::size_t size() const { return jobs_.size(); }

    static constexpr std::size_t MEMBERS_PER_COMMAND = 500;

private:
    struct Followed {
        std::uint32_t grace_ms = 0;
        std::uint32_t followers = 0;
    };
    void unfollow(const std::string& id);

    std::unordered_map<std::string, Followed> jobs_;
};

}  // namespace sluice::api
