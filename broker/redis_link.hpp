// A hiredis async connection driven by the broker's own poll loop: hiredis tells us through its
// event hooks which of read/write it wants on its socket, the loop polls that fd beside the ZMQ
// sockets and hands readiness back. Reconnects by itself, and logs in (AUTH) after every
// connect before anything else is sent. With sentinels (common/sentinel.hpp) every connect
// first asks a sentinel where the master is, on the same one hiredis context slot (so the loop
// still polls one fd), then connects there and checks with ROLE that it is a master before
// anything is written; a second connection, to one sentinel, SUBSCRIBEs to +switch-master so a
// failover that leaves the master's connection open (a partition) is noticed too. Not
// thread-safe: loop thread only.
#pragma once

#include "redis_login.hpp"
#include "sentinel.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::broker {

class RedisLink {
public:
    // Called with the reply, or with nullptr when the connection failed before it arrived.
    using Callback = std::function<void(redisReply*)>;

    // Redis at host:port, or, with `sentinels`, wherever they say the master is (host and port
    // then unused).
    RedisLink(std::string host, int port, RedisLogin login, std::optional<sentinel::Config> sentinels = std::nullopt);
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    // Starts a connection attempt if none is open and the retry delay has passed; with
    // sentinels, also keeps the +switch-master watch up and handles what it has received
    // (its socket is polled here without waiting: the loop calls this every turn).
    void maintain(std::chrono::steady_clock::time_point now);

    // Connected and, with a password, logged in: commands may be sent.
    bool connected() const { return connected_; }

    // Poll support: the fd (-1 when none) and whether hiredis wants to read/write.
    int fd() const;
    bool wants_read() const { return io_.read; }
    bool wants_write() const { return io_.write; }
    void on_readable();
    void on_writable();

    // Sends a command. Returns false (and never calls `done`) when not connected.
    bool command(const std::vector<std::string_view>& args, Callback done);

    // Replies still owed to us.
    int pending() const { return pending_; }

private:
    // What the open context is for: asking a sentinel, or the master's connection.
    enum class Peer { SENTINEL, MASTER };

    void open(const std::string& host, int port);
    // Names the peer the context is for in logs: "redis 10.0.0.1:6399", "sentinel 10.0.0.3:26379".
    std::string where() const;
    static void on_connect(const redisAsyncContext* ctx, int status);
    static void on_disconnect(const redisAsyncContext* ctx, int status);
    static void on_reply(redisAsyncContext* ctx, void* reply, void* privdata);
    static void on_auth(redisAsyncContext* ctx, void* reply, void* privdata);
    static void on_master_addr(redisAsyncContext* ctx, void* reply, void* privdata);
    static void on_role(redisAsyncContext* ctx, void* reply, void* privdata);
    void on_logged_in();
    // The sentinel asked did not answer or did not know the master: the next one is asked at
    // once, or after RECONNECT_DELAY when every one failed this round.
    void sentinel_failed();
    void on_ready();
    // The +switch-master watch: connects it, or drives its I/O with a poll that does not wait.
    void maintain_watch(std::chrono::steady_clock::time_point now);
    static void on_watch_connect(const redisAsyncContext* ctx, int status);
    static void on_watch_disconnect(const redisAsyncContext* ctx, int status);
    static void on_watch_auth(redisAsyncContext* ctx, void* reply, void* privdata);
    static void on_watch_message(redisAsyncContext* ctx, void* reply, void* privdata);
    // The sentinels named `master` the new master: a connection to another server is closed
    // (replies owed answer nullptr) and the next connect asks the sentinels.
    void follow(const sentinel::Address& master);

    // How long to wait between connection attempts while Redis is down.
    static constexpr std::chrono::milliseconds RECONNECT_DELAY{500};
    // How long to wait before watching again after the watch's sentinel failed: the next
    // sentinel in the list is tried. The watch only speeds the notice of a failover up.
    static constexpr std::chrono::milliseconds WATCH_RETRY_DELAY{2000};

    std::string host_;  // the master's, from the sentinels when there are any
    int port_;
    RedisLogin login_;
    std::optional<sentinel::Config> sentinels_;
    std::optional<sentinel::Rotation> rotation_;
    Peer peer_ = Peer::MASTER;
    redisAsyncContext* ctx_ = nullptr;
    bool connected_ = false;
    // What hiredis wants to do on a context's socket, as its event hooks say (attach()).
    struct Interest {
        bool read = false;
        bool write = false;
    };
    // Points `ctx`'s event hooks at `interest`.
    static void attach(redisAsyncContext* ctx, Interest& interest);
    Interest io_;
    int pending_ = 0;
    LoginState login_state_;
    LoginState sentinel_login_state_;
    // A sentinel has just named the master: the next connect goes there.
    bool master_known_ = false;
    // The last connection attempt failed: the next failures are not logged again, a success is.
    bool unreachable_ = false;
    std::chrono::steady_clock::time_point retry_at_{};
    redisAsyncContext* watch_ = nullptr;
    Interest watch_io_;
    std::size_t watch_index_ = 0;  // the sentinel the watch tries next
    std::chrono::steady_clock::time_point watch_retry_at_{};
};

// Returns the reply's text for a status or string reply, "" otherwise.
std::string reply_text(const redisReply* r);
// Returns the number a string reply holds (Lua scripts return numbers as text), 0 for anything else.
std::int64_t reply_int(const redisReply* r);
// Describes why `r` is not the reply expected: Redis's error, a lost connection, or neither.
std::string reply_error(const redisReply* r);

}  // namespace sluice::broker
