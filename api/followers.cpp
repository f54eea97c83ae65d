// See followers.hpp.
#include "followers.hpp"

#include "keys.hpp"

namespace sluice::api {

Followers::Ticket& Followers::Ticket::operator=(Ticket&& other) noexcept {
    if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
        id_ = std::move(other.id_);
    }
    return *this;
}

void Followers::Ticket::release() {
    if (owner_ != nullptr) std::exchange(owner_, nullptr)->unfollow(id_);
}

Followers::Ticket Followers::follow(const std::string& id, std::uint32_t grace_ms) {
    if (grace_ms == 0) return {};
    Followed& job = jobs_[id];
    job.grace_ms = grace_ms;
    ++job.followers;
    return {this, id};
}

void Followers::unfollow(const std::string& id) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && --it->second.followers == 0) jobs_.erase(it);
}

std::vector<std::vector<std::string>> Followers::renewals(std::int64_t now_ms) const {
    std::vector<std::vector<std::string>> commands;
    for (const auto& [id, job] : jobs_) {
        // XX: a job the broker has taken out (it ended) is not put back; GT: an api whose clock
        // is behind does not shorten another api's deadline.
        if (commands.empty() || commands.back().size() >= 4 + 2 * MEMBERS_PER_COMMAND)
            commands.push_back({"ZADD", std::string(keys::FOLLOWED), "XX", "GT"});
        commands.back().push_back(std::to_string(now_ms + job.grace_ms));
        commands.back().push_back(id);
    }
    return commands;
}

}  // namespace sluice::api
