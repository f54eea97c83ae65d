// hiredis async on the broker's poll loop (see redis_link.hpp).
#include "redis_link.hpp"

#include "log.hpp"

#include <poll.h>

#include <cstdlib>

namespace sluice::broker {
namespace {

RedisLink* link_of(const redisAsyncContext* ctx) {
    return static_cast<RedisLink*>(ctx->data);
}

}  // namespace

RedisLink::RedisLink(std::string host, int port, RedisLogin login, std::optional<sentinel::Config> sentinels)
    : host_(std::move(host)), port_(port), login_(std::move(login)), sentinels_(std::move(sentinels)) {
    if (sentinels_) rotation_.emplace(sentinels_->sentinels);
}

RedisLink::~RedisLink() {
    for (redisAsyncContext* ctx : {ctx_, watch_})
        if (ctx != nullptr) {
            ctx->data = nullptr;
            redisAsyncFree(ctx);
        }
}

void RedisLink::maintain(std::chrono::steady_clock::time_point now) {
    if (sentinels_) maintain_watch(now);
    if (ctx_ != nullptr || now < retry_at_) return;
    retry_at_ = now + RECONNECT_DELAY;
    // With sentinels, every connect to the master follows a fresh answer: the master may have
    // moved while the link was down, and a master found before is not trusted again.
    if (rotation_ && !master_known_) {
        peer_ = Peer::SENTINEL;
        return open(rotation_->current().host, rotation_->current().port);
    }
    master_known_ = false;
    peer_ = Peer::MASTER;
    open(host_, port_);
}

void RedisLink::open(const std::string& host, int port) {
    redisAsyncContext* ctx = redisAsyncConnect(host.c_str(), port);
    if (ctx == nullptr) return;
    if (ctx->err) {
        if (peer_ == Peer::SENTINEL) {
            log::debug("{}: {}", where(), ctx->errstr);
            sentinel_failed();
        } else {
            if (!unreachable_) log::warn("{}: {}; retrying quietly", where(), ctx->errstr);
            unreachable_ = true;
        }
        redisAsyncFree(ctx);
        return;
    }
    ctx_ = ctx;
    ctx->data = this;
    attach(ctx, io_);
    redisAsyncSetConnectCallback(ctx, &RedisLink::on_connect);
    redisAsyncSetDisconnectCallback(ctx, &RedisLink::on_disconnect);
}

void RedisLink::attach(redisAsyncContext* ctx, Interest& interest) {
    ctx->ev.data = &interest;
    ctx->ev.addRead = [](void* io) { static_cast<Interest*>(io)->read = true; };
    ctx->ev.delRead = [](void* io) { static_cast<Interest*>(io)->read = false; };
    ctx->ev.addWrite = [](void* io) { static_cast<Interest*>(io)->write = true; };
    ctx->ev.delWrite = [](void* io) { static_cast<Interest*>(io)->write = false; };
    ctx->ev.cleanup = [](void* io) { *static_cast<Interest*>(io) = {}; };
}

std::string RedisLink::where() const {
    if (peer_ == Peer::SENTINEL)
        return fmt::format("sentinel {}:{}", rotation_->current().host, rotation_->current().port);
    return fmt::format("redis {}:{}", host_, port_);
}

void RedisLink::on_connect(const redisAsyncContext* ctx, int status) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr) return;
    if (status != REDIS_OK) {
        link->ctx_ = nullptr;  // hiredis frees the context after this callback
        link->connected_ = false;
        if (link->peer_ == Peer::SENTINEL) {
            log::debug("{} unreachable: {}", link->where(), ctx->errstr);
            return link->sentinel_failed();
        }
        if (!link->unreachable_) log::warn("{} unreachable: {}; retrying quietly", link->where(), ctx->errstr);
        link->unreachable_ = true;
        return;
    }
    if (!link->login_.required()) return link->on_logged_in();
    // AUTH goes first; nothing else is sent before its answer (connected() is still false).
    send_login(link->ctx_, link->login_, &RedisLink::on_auth);
}

void RedisLink::on_auth(redisAsyncContext* ctx, void* reply, void*) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr || reply == nullptr) return;
    LoginState& state = link->peer_ == Peer::SENTINEL ? link->sentinel_login_state_ : link->login_state_;
    // Refused: the link drops the connection and tries again (a sentinel: the next one).
    if (!state.accepted(*static_cast<const redisReply*>(reply), link->login_, link->where()))
        return redisAsyncDisconnect(ctx);
    link->on_logged_in();
}

void RedisLink::on_logged_in() {
    if (!sentinel::after_login(ctx_, peer_ == Peer::SENTINEL, sentinels_, &RedisLink::on_master_addr,
                               &RedisLink::on_role))
        on_ready();
}

void RedisLink::on_master_addr(redisAsyncContext* ctx, void* reply, void*) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr || reply == nullptr) return;
    link->master_known_ = sentinel::take_master(static_cast<redisReply*>(reply), link->sentinels_->master_name,
                                                link->where(), *link->rotation_, link->host_, link->port_);
    // The master is connected to from the next loop turn on; on_disconnect says when.
    redisAsyncDisconnect(ctx);
}

void RedisLink::on_role(redisAsyncContext* ctx, void* reply, void*) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr || reply == nullptr) return;
    if (sentinel::is_master_role(static_cast<redisReply*>(reply))) return link->on_ready();
    log::warn("{} is not a master (ROLE: {}): asking the sentinels again", link->where(),
              sentinel::role_of(static_cast<redisReply*>(reply)));
    redisAsyncDisconnect(ctx);
}

void RedisLink::sentinel_failed() {
    if (rotation_->failed()) {
        retry_at_ = {};
        return;
    }
    if (!unreachable_)
        log::warn("no sentinel named master '{}' (asked {}); asking again every {} ms quietly",
                  sentinels_->master_name, sentinels_->sentinels.size(), RECONNECT_DELAY.count());
    unreachable_ = true;
}

void RedisLink::on_ready() {
    connected_ = true;
    unreachable_ = false;
    log::info("{} connected{}", where(), login_.required() ? " as " + login_.user : "");
}

void RedisLink::on_disconnect(const redisAsyncContext* ctx, int status) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr) return;
    link->ctx_ = nullptr;
    link->io_ = {};
    if (link->peer_ == Peer::SENTINEL) {
        if (link->master_known_) link->retry_at_ = {};  // on to the master at once
        else link->sentinel_failed();
        return;
    }
    if (status != REDIS_OK) log::warn("{} connection lost: {}", link->where(), ctx->errstr);
    link->connected_ = false;
}

void RedisLink::maintain_watch(std::chrono::steady_clock::time_point now) {
    if (watch_ != nullptr) {
        pollfd ready{watch_->c.fd, static_cast<short>((watch_io_.read ? POLLIN : 0) | (watch_io_.write ? POLLOUT : 0)), 0};
        if (::poll(&ready, 1, 0) <= 0) return;
        if (ready.revents & POLLOUT) redisAsyncHandleWrite(watch_);
        if (watch_ != nullptr && (ready.revents & (POLLIN | POLLERR | POLLHUP))) redisAsyncHandleRead(watch_);
        return;
    }
    if (now < watch_retry_at_) return;
    watch_retry_at_ = now + WATCH_RETRY_DELAY;
    const sentinel::Address& at = sentinels_->sentinels[watch_index_];
    watch_index_ = (watch_index_ + 1) % sentinels_->sentinels.size();
    redisAsyncContext* ctx = redisAsyncConnect(at.host.c_str(), at.port);
    if (ctx == nullptr) return;
    if (ctx->err) {
        redisAsyncFree(ctx);
        return;
    }
    watch_ = ctx;
    ctx->data = this;
    attach(ctx, watch_io_);
    redisAsyncSetConnectCallback(ctx, &RedisLink::on_watch_connect);
    redisAsyncSetDisconnectCallback(ctx, &RedisLink::on_watch_disconnect);
}

void RedisLink::on_watch_connect(const redisAsyncContext* ctx, int status) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr) return;
    if (status != REDIS_OK) {
        link->watch_ = nullptr;  // hiredis frees the context after this callback
        return;
    }
    if (!link->login_.required()) return on_watch_auth(link->watch_, nullptr, nullptr);
    send_login(link->watch_, link->login_, &RedisLink::on_watch_auth);
}

void RedisLink::on_watch_auth(redisAsyncContext* ctx, void* reply, void*) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr || (reply == nullptr && link->login_.required())) return;
    if (reply != nullptr && static_cast<redisReply*>(reply)->type == REDIS_REPLY_ERROR) {
        log::warn("sentinel watch: login refused: {}", reply_error(static_cast<redisReply*>(reply)));
        return redisAsyncDisconnect(ctx);
    }
    const char* argv[] = {"SUBSCRIBE", sentinel::SWITCH_CHANNEL.data()};
    const size_t lens[] = {9, sentinel::SWITCH_CHANNEL.size()};
    redisAsyncCommandArgv(ctx, &RedisLink::on_watch_message, nullptr, 2, argv, lens);
}

void RedisLink::on_watch_message(redisAsyncContext* ctx, void* reply, void*) {
    RedisLink* link = link_of(ctx);
    const auto* r = static_cast<redisReply*>(reply);
    if (link == nullptr || r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || reply_text(r->element[0]) != "message")
        return;
    if (std::optional<sentinel::Address> master = sentinel::switched_master(reply_text(r->element[2]), link->sentinels_->master_name))
        link->follow(*master);
}

void RedisLink::on_watch_disconnect(const redisAsyncContext* ctx, int) {
    if (RedisLink* link = link_of(ctx)) link->watch_ = nullptr;
}

void RedisLink::follow(const sentinel::Address& master) {
    if (peer_ != Peer::MASTER || ctx_ == nullptr || (master.host == host_ && master.port == port_)) return;
    log::warn("{}: the sentinels moved master '{}' to {}:{}; reconnecting", where(), sentinels_->master_name,
              master.host, master.port);
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    connected_ = false;
    io_ = {};
    redisAsyncFree(ctx);  // replies owed get nullptr; on_disconnect may run, and finds nothing left to do
    retry_at_ = {};
}

int RedisLink::fd() const { return ctx_ == nullptr ? -1 : ctx_->c.fd; }

void RedisLink::on_readable() {
    if (ctx_ != nullptr) redisAsyncHandleRead(ctx_);
}

void RedisLink::on_writable() {
    if (ctx_ != nullptr) redisAsyncHandleWrite(ctx_);
}

bool RedisLink::command(const std::vector<std::string_view>& args, Callback done) {
    if (!connected_ || ctx_ == nullptr) return false;
    std::vector<const char*> argv;
    std::vector<size_t> argvlen;
    argv.reserve(args.size());
    argvlen.reserve(args.size());
    for (std::string_view arg : args) {
        argv.push_back(arg.data());
        argvlen.push_back(arg.size());
    }
    auto* owned = new Callback(std::move(done));
    if (redisAsyncCommandArgv(ctx_, &RedisLink::on_reply, owned, static_cast<int>(args.size()),
                              argv.data(), argvlen.data()) != REDIS_OK) {
        delete owned;
        return false;
    }
    ++pending_;
    return true;
}

void RedisLink::on_reply(redisAsyncContext* ctx, void* reply, void* privdata) {
    auto* done = static_cast<Callback*>(privdata);
    if (RedisLink* link = link_of(ctx)) --link->pending_;
    (*done)(static_cast<redisReply*>(reply));
    delete done;
}

std::string reply_text(const redisReply* r) {
    if (r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        return std::string(r->str, r->len);
    return {};
}

std::int64_t reply_int(const redisReply* r) { return std::atoll(reply_text(r).c_str()); }

std::string reply_error(const redisReply* r) {
    if (r == nullptr) return "connection lost";
    if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
    return "unexpected reply";
}

}  // namespace sluice::broker
