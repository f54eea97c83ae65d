// A hiredis async connection driven by the broker's own poll loop: hiredis tells us through its
// event hooks which of read/write it wants on its socket, the loop polls that fd beside the ZMQ
// sockets and hands readiness back. Reconnects by itself, and logs in (AUTH) after every
// connect before anything else is sent. Not thread-safe: loop thread only.
#pragma once

#include "redis_login.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::broker {

class RedisLink {
public:
    // Called with the reply, or with nullptr when the connection failed before it arrived.
    using Callback = std::function<void(redisReply*)>;

    RedisLink(std::string host, int port, RedisLogin login);
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    // Starts a connection attempt if none is open and the retry delay has passed.
    void maintain(std::chrono::steady_clock::time_point now);

    // Connected and, with a password, logged in: commands may be sent.
    bool connected() const { return connected_; }

    // Poll support: the fd (-1 when none) and whether hiredis wants to read/write.
    int fd() const;
    bool wants_read() const { return want_read_; }
    bool wants_write() const { return want_write_; }
    void on_readable();
    void on_writable();

    // Sends a command. Returns false (and never calls `done`) when not connected.
    bool command(const std::vector<std::string_view>& args, Callback done);

    // Replies still owed to us.
    int pending() const { return pending_; }

private:
    static void on_connect(const redisAsyncContext* ctx, int status);
    static void on_disconnect(const redisAsyncContext* ctx, int status);
    static void on_reply(redisAsyncContext* ctx, void* reply, void* privdata);
    static void on_auth(redisAsyncContext* ctx, void* reply, void* privdata);
    void on_ready();

    // How long to wait between connection attempts while Redis is down.
    static constexpr std::chrono::milliseconds RECONNECT_DELAY{500};

    std::string host_;
    int port_;
    RedisLogin login_;
    redisAsyncContext* ctx_ = nullptr;
    bool connected_ = false;
    bool want_read_ = false;
    bool want_write_ = false;
    int pending_ = 0;
    LoginState login_state_;
    // The last connection attempt failed: the next failures are not logged again, a success is.
    bool unreachable_ = false;
    std::chrono::steady_clock::time_point retry_at_{};
};

// Returns the reply's text for a status or string reply, "" otherwise.
std::string reply_text(const redisReply* r);
// Describes why `r` is not the reply expected: Redis's error, a lost connection, or neither.
std::string reply_error(const redisReply* r);

}  // namespace sluice::broker
