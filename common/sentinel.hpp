// Finding the Redis master through Redis Sentinel, the parts the api and the broker share:
// the sentinels' list from the environment, the order they are asked in, and reading their
// answers (SENTINEL get-master-addr-by-name, a +switch-master message, ROLE). hiredis has no
// Sentinel support; each connection asks a sentinel itself, asynchronously on its own loop
// (api/redis_client.cpp, broker/redis_link.cpp), before every connect to the master, and
// checks with ROLE that what it reached is a master. Not thread-safe: one per connection.
#pragma once

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sentinel {

// The channel on which a sentinel announces a failover (switched_master reads its messages).
inline constexpr std::string_view SWITCH_CHANNEL = "+switch-master";

// Longest host name or address accepted in SLUICE_REDIS_SENTINELS or a sentinel's answer.
inline constexpr std::size_t MAX_HOST = 255;
// Most sentinels listed: a deployment runs three or five; more is a mistake in the list.
inline constexpr std::size_t MAX_SENTINELS = 16;

struct Address {
    std::string host;
    int port = 0;
    bool operator==(const Address&) const = default;
};

struct Config {
    std::vector<Address> sentinels;        // SLUICE_REDIS_SENTINELS ("host:port,host:port,...")
    std::string master_name = "sluice";    // SLUICE_REDIS_MASTER_NAME: the name sentinels monitor
};

// "host:port" (an IPv6 address in brackets: "[::1]:26379") as an Address; nullopt when it is
// not one (no port, a port out of 1..65535, an empty or too long host, blanks).
std::optional<Address> parse_address(std::string_view text);

// The sentinels of a comma-separated list; nullopt when an item is not an address (its text
// in `bad`), the list is empty, or it holds more than MAX_SENTINELS.
std::optional<std::vector<Address>> parse_list(std::string_view text, std::string& bad);

// SLUICE_REDIS_SENTINELS and SLUICE_REDIS_MASTER_NAME; nullopt when SLUICE_REDIS_SENTINELS is
// unset (Redis at SLUICE_REDIS_HOST/PORT). A bad value stops the process (env_fail). Mains only.
std::optional<Config> config_from_env();

// The master's address in a reply to SENTINEL get-master-addr-by-name (two strings, host and
// port); nullopt for anything else: nil (the sentinel does not monitor that name), an error.
std::optional<Address> master_from_reply(const redisReply* reply);

// The new master's address in a +switch-master message ("<name> <old host> <old port> <new
// host> <new port>") about `master_name`; nullopt for another master or a malformed message.
std::optional<Address> switched_master(std::string_view message, std::string_view master_name);

// True when `reply` answers ROLE for a master (its first element is "master"); a replica, a
// sentinel, an error or nothing is not.
bool is_master_role(const redisReply* reply);
// What a ROLE `reply` says, for logs: "master", "slave", "sentinel", Redis's error, or
// "no answer".
std::string role_of(const redisReply* reply);

// Sends SENTINEL get-master-addr-by-name `master_name` on `ctx`, a sentinel's connection;
// `done` gets the reply (master_from_reply reads it). Returns REDIS_OK when queued.
inline int ask_master(redisAsyncContext* ctx, const std::string& master_name, redisCallbackFn* done) {
    const char* argv[] = {"SENTINEL", "get-master-addr-by-name", master_name.c_str()};
    const size_t lens[] = {8, 23, master_name.size()};
    return redisAsyncCommandArgv(ctx, done, nullptr, 3, argv, lens);
}

// Sends ROLE on `ctx`, the connection to what a sentinel named; `done` gets the reply
// (is_master_role reads it). A master demoted by a failover and back after a restart or a
// partition still answers, and must not be written to whatever a sentinel said a moment ago.
// Returns REDIS_OK when queued.
inline int ask_role(redisAsyncContext* ctx, redisCallbackFn* done) {
    const char* argv[] = {"ROLE"};
    const size_t lens[] = {4};
    return redisAsyncCommandArgv(ctx, done, nullptr, 1, argv, lens);
}

// What a connection sends once logged in, the same on the api's loop and the broker's: to a
// sentinel (`to_sentinel`), the master query (`on_master` gets its answer); to a master found
// through `sentinels`, ROLE (`on_role`); to a Redis named by host and port, nothing. Returns
// true when it sent something (the connection is ready once that answer says so), false when
// the connection is ready now.
inline bool after_login(redisAsyncContext* ctx, bool to_sentinel, const std::optional<Config>& sentinels,
                        redisCallbackFn* on_master, redisCallbackFn* on_role) {
    if (to_sentinel) return ask_master(ctx, sentinels->master_name, on_master), true;
    if (!sentinels) return false;
    ask_role(ctx, on_role);
    return true;
}

class Rotation;

// Takes a sentinel's answer to ask_master (`where` names that sentinel in logs). When it names
// the master: moves `host` and `port` there (a new address is logged), tells `rotation`, and
// returns true. Otherwise logs why and returns false: the caller asks the next sentinel.
bool take_master(const redisReply* reply, const std::string& master_name, std::string_view where, Rotation& rotation,
                 std::string& host, int& port);

// Which sentinel to ask: the one that answered last, else the next in the list. One round
// asks each sentinel once; after a round with no answer the caller waits before the next.
class Rotation {
public:
    explicit Rotation(std::vector<Address> sentinels) : sentinels_(std::move(sentinels)) {}
    const Address& current() const { return sentinels_[at_]; }
    // The current sentinel did not answer or did not know the master: moves to the next.
    // Returns false when that ends a round (every sentinel failed since the last answer).
    bool failed() {
        at_ = (at_ + 1) % sentinels_.size();
        return ++failures_ % sentinels_.size() != 0;
    }
    // The current sentinel named the master: it is asked first next time.
    void answered() { failures_ = 0; }

private:
    std::vector<Address> sentinels_;
    std::size_t at_ = 0;
    std::size_t failures_ = 0;
};

}  // namespace sluice::sentinel
