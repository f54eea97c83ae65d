// The broker lease (README.md, "A standby broker"): one broker leads, holding keys::LEADER in
// Redis with a time to live it keeps renewing; any other broker stands by, asking for the lease
// until it is free. Every job script checks the leader's token (scripts::HEAD), so only the
// leader's writes land, whatever the others believe.
#include "broker.hpp"

#include "lease_scripts.hpp"
#include "log.hpp"

namespace sluice::broker {

void Broker::keep_lease(Clock::time_point now) {
    if (!token_.empty() && !lapsed_ && !lease_valid(now)) {
        lapsed_ = true;
        log::warn("lease {} not renewed for {} ms: not serving until a renewal says it is still ours", token_,
                  config_.lease_ttl.count());
    }
    // Not renewed for two leases and cut off from Redis (no connection, or a renewal unanswered
    // for a lease): a standby may well lead, and the apis and workers still connected here
    // would wait on a broker that can do nothing. Closing the sockets sends them to it. (A
    // broker merely paused that long sends its renewal first, and goes on if it still leads.)
    const bool cut_off = !redis_.connected() || (lease_in_flight_ && now - lease_sent_ >= config_.lease_ttl);
    if (!token_.empty() && now - renewed_sent_ >= config_.lease_ttl * 2 && cut_off)
        return lease_lost(fmt::format("not renewed for {} ms, and Redis is out of reach", 2 * config_.lease_ttl.count()));
    if (lease_in_flight_ || now < next_lease_step_ || !redis_.connected()) return;
    lease_sent_ = now;
    const std::string ttl = std::to_string(config_.lease_ttl.count());
    if (token_.empty()) {
        lease_in_flight_ = run_script(scripts::CAMPAIGN, {}, {config_.broker_id, ttl}, [this, sent = now](redisReply* r) {
            lease_in_flight_ = false;
            next_lease_step_ = Clock::now() + config_.lease_ttl / 8;
            if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return lease_failed("campaign", r);
            lease_error_.clear();
            const std::string token = reply_text(r->element[1]);
            if (r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1) {
                token_ = token;
                renewed_sent_ = sent;
                last_holder_.clear();
                return;
            }
            if (token != last_holder_) log::info("standing by: broker lease held by {}", token);
            last_holder_ = token;
        });
        return;
    }
    lease_in_flight_ = run_script(scripts::RENEW, {}, {token_, ttl}, [this, sent = now](redisReply* r) {
        lease_in_flight_ = false;
        next_lease_step_ = Clock::now() + config_.lease_ttl / 4;
        if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return lease_failed("renewal", r);
        lease_error_.clear();
        if (r->integer != 1) return lease_lost("another broker holds the lease now");
        renewed_sent_ = sent;
        if (lapsed_) log::info("lease {} renewed after a lapse: serving again", token_);
        lapsed_ = false;
    });
}

void Broker::lease_failed(const char* what, const redisReply* r) {
    if (r == nullptr) return;  // the connection dropped: the Redis link says so
    const std::string error = reply_error(r);
    // Said once per kind of error, not at every try (every lease / 8 while Redis loads its AOF).
    const std::string kind = error.substr(0, error.find(' '));
    if (kind == lease_error_) return;
    lease_error_ = kind;
    if (kind == "LOADING")
        log::warn("Redis is loading its data into memory: waiting for it before taking the lease");
    else
        log::error("{} of the lease failed: {}; retrying quietly", what, error);
}

bool Broker::lease_valid(Clock::time_point now) const {
    return !token_.empty() && now - renewed_sent_ < config_.lease_ttl;
}

void Broker::lease_lost(const std::string& why) {
    if (stepping_down_) return;
    log::warn("lost the lease {}: {}", token_, why);
    stepping_down_ = true;
}

void Broker::resign() {
    if (token_.empty() || !redis_.connected()) return;
    run_script(scripts::RESIGN, {}, {token_}, [token = token_](redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
            log::info("gave the lease {} up: a standby may lead at once", token);
    });
}

}  // namespace sluice::broker
