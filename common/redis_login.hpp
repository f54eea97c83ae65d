// How the api and the broker log in to Redis: the user and password they send in AUTH right
// after every connect, before any other command, on their hiredis async connections. The
// password comes from a file (SLUICE_REDIS_PASSWORD_FILE), never from a command line.
// Not thread-safe: each connection's loop thread owns its RedisLogin and LoginState.
#pragma once

#include "env.hpp"
#include "log.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <string>
#include <string_view>

namespace sluice {

struct RedisLogin {
    // The Redis ACL user Sluice's parts share (scripts/redis-auth.sh defines it). `default`
    // logs in to a Redis that only has a `requirepass`.
    std::string user = "sluice";                 // SLUICE_REDIS_USER
    // Empty: no AUTH is sent (a Redis without a password).
    std::string password;                        // SLUICE_REDIS_PASSWORD_FILE (the file's contents)

    bool required() const { return !password.empty(); }
};

// Reads SLUICE_REDIS_USER and SLUICE_REDIS_PASSWORD_FILE; a password file that cannot be read
// stops the process (exit 2) naming the variable. Mains only, before any thread starts.
inline RedisLogin redis_login_from_env() {
    RedisLogin login;
    login.user = env_string("SLUICE_REDIS_USER", login.user);
    login.password = env_secret_file("SLUICE_REDIS_PASSWORD_FILE");
    return login;
}

// Sends AUTH with `login` on `ctx`; `done` gets the reply. Returns REDIS_OK when queued.
inline int send_login(redisAsyncContext* ctx, const RedisLogin& login, redisCallbackFn* done) {
    const char* argv[] = {"AUTH", login.user.c_str(), login.password.c_str()};
    const size_t lens[] = {4, login.user.size(), login.password.size()};
    return redisAsyncCommandArgv(ctx, done, nullptr, 3, argv, lens);
}

// The answers to one connection's logins in a row. A wrong password stays wrong until someone
// fixes it, and the connection retries every second or so: only the first refusal of a run is
// logged (an error naming what to check), not every retry.
class LoginState {
public:
    // True when `reply` accepts the login of `login.user`; `where` names the connection in the
    // log line ("redis 127.0.0.1:6399").
    bool accepted(const redisReply& reply, const RedisLogin& login, std::string_view where) {
        if (reply.type != REDIS_REPLY_ERROR) {
            refused_ = false;
            return true;
        }
        if (!refused_)
            log::error("{} refused the login of user '{}': {} (check SLUICE_REDIS_USER and "
                       "SLUICE_REDIS_PASSWORD_FILE); retrying quietly",
                       where, login.user, std::string_view(reply.str, reply.len));
        refused_ = true;
        return false;
    }

private:
    bool refused_ = false;
};

}  // namespace sluice
