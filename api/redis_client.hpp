// An async Redis connection for one shard: hiredis's async API attached to the shard's Asio
// loop through its event hooks, wrapped so a coroutine can `co_await` a command's reply.
// Reconnects by itself with backoff, and logs in (AUTH) after every connect before anything
// else is sent; until then, and while it is down, every command answers UNAVAILABLE at once.
// With sentinels (common/sentinel.hpp) every connect first asks a sentinel where the master is,
// then checks with ROLE that what it reached is a master before it counts as connected.
// Optionally SUBSCRIBEs to one channel after every (re)connect. Not thread-safe: use it only
// from the loop thread of the io_context it was made with.
#pragma once

#include "loop.hpp"
#include "redis_login.hpp"
#include "sentinel.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct redisAsyncContext;

namespace sluice::api {

// A Redis reply copied out of hiredis, plus UNAVAILABLE for "no answer" (not connected,
// connection lost before the reply, or timed out).
struct RedisValue {
    enum class Kind { NIL, STRING, INTEGER, ARRAY, STATUS, ERROR, UNAVAILABLE };
    Kind kind = Kind::NIL;
    std::string str;  // STRING, STATUS, ERROR, UNAVAILABLE (the reason)
    long long integer = 0;
    std::vector<RedisValue> elements;

    // True when Redis answered and the answer is not an error.
    bool ok() const { return kind != Kind::ERROR && kind != Kind::UNAVAILABLE; }
};

class RedisConnection {
public:
    // `name` is only for logs ("commands", "subscriber"). With `sentinels`, Redis is wherever
    // they say the master is (host and port then unused).
    RedisConnection(asio::io_context& ioc, std::string host, int port, RedisLogin login,
                    std::optional<sentinel::Config> sentinels, std::string name);
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    // Makes this a subscriber: after each connect it SUBSCRIBEs to `channel`, calls
    // `on_subscribed` once the subscription is confirmed, and `on_message` with each payload.
    // Call before start().
    void set_subscription(std::string channel, std::function<void(const std::string&)> on_message,
                          std::function<void()> on_subscribed);

    // Starts connecting; keeps reconnecting (with backoff) until stop().
    void start();
    // Closes the connection for good; pending commands answer UNAVAILABLE.
    void stop();

    // The sentinels announced `master` as the new master: a connection to another server is
    // closed (pending commands answer UNAVAILABLE) and the next connect asks the sentinels.
    // Nothing happens without sentinels, or when already there.
    void follow(const sentinel::Address& master);

    // Sends one command (binary-safe arguments) and returns its reply, or UNAVAILABLE when
    // not connected, the connection drops, or no reply comes within `timeout`.
    awaitable<RedisValue> command(std::vector<std::string> args, Clock::duration timeout);

    // Sends `commands` back to back (one write, one round trip) and returns their replies in
    // order; each is UNAVAILABLE under the same conditions as command(). Nothing else is sent
    // on this connection in between, so a MULTI ... EXEC batch is safe.
    awaitable<std::vector<RedisValue>> pipeline(std::vector<std::vector<std::string>> commands,
                                                Clock::duration timeout);

private:
    class Adapter;
    struct Call;
    struct Batch;

    // What the open context is for: asking a sentinel, or the master's connection.
    enum class Peer { SENTINEL, MASTER };

    void connect();
    void open(const std::string& host, int port);
    // Names the peer of the open context in logs ("redis commands: 10.0.0.1:6399").
    std::string where() const;
    void schedule_reconnect();
    // Connects again from a fresh turn of the loop (never from inside a hiredis callback).
    void reconnect_now();
    void on_connected();
    void on_lost(const char* why);
    // The sentinel asked did not answer or did not know the master: the next one is asked at
    // once, or after the backoff when every one failed this round.
    void sentinel_failed(const char* why);
    static void handle_connect(const redisAsyncContext* ac, int status);
    static void handle_auth(redisAsyncContext* ac, void* reply, void* privdata);
    static void handle_master_addr(redisAsyncContext* ac, void* reply, void* privdata);
    static void handle_role(redisAsyncContext* ac, void* reply, void* privdata);
    void on_logged_in();
    void on_ready();
    static void handle_disconnect(const redisAsyncContext* ac, int status);
    static void handle_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void handle_batch_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void handle_message(redisAsyncContext* ac, void* reply, void* privdata);

    asio::io_context& ioc_;
    std::string host_;
    int port_;
    RedisLogin login_;
    std::optional<sentinel::Config> sentinels_;
    std::optional<sentinel::Rotation> rotation_;
    Peer peer_ = Peer::MASTER;
    // A sentinel has just named the master: the next connect goes there.
    bool master_known_ = false;
    std::string name_;
    redisAsyncContext* ctx_ = nullptr;
    std::shared_ptr<Adapter> adapter_;
    bool connected_ = false;
    bool stopped_ = true;
    LoginState login_state_;
    LoginState sentinel_login_state_;
    asio::steady_timer retry_timer_;
    asio::steady_timer connect_timer_;
    Clock::duration backoff_;
    std::string channel_;
    std::function<void(const std::string&)> on_message_;
    std::function<void()> on_subscribed_;
};

}  // namespace sluice::api
