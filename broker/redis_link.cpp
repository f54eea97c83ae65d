// hiredis async on the broker's poll loop (see redis_link.hpp).
#include "redis_link.hpp"

#include "log.hpp"

namespace sluice::broker {
namespace {

RedisLink* link_of(const redisAsyncContext* ctx) {
    return static_cast<RedisLink*>(ctx->data);
}

}  // namespace

RedisLink::RedisLink(std::string host, int port, RedisLogin login)
    : host_(std::move(host)), port_(port), login_(std::move(login)) {}

RedisLink::~RedisLink() {
    if (ctx_ != nullptr) {
        ctx_->data = nullptr;
        redisAsyncFree(ctx_);
    }
}

void RedisLink::maintain(std::chrono::steady_clock::time_point now) {
    if (ctx_ != nullptr || now < retry_at_) return;
    retry_at_ = now + RECONNECT_DELAY;
    redisAsyncContext* ctx = redisAsyncConnect(host_.c_str(), port_);
    if (ctx == nullptr) return;
    if (ctx->err) {
        if (!unreachable_) log::warn("redis {}:{}: {}; retrying quietly", host_, port_, ctx->errstr);
        unreachable_ = true;
        redisAsyncFree(ctx);
        return;
    }
    ctx_ = ctx;
    ctx->data = this;
    ctx->ev.data = this;
    ctx->ev.addRead = [](void* self) { static_cast<RedisLink*>(self)->want_read_ = true; };
    ctx->ev.delRead = [](void* self) { static_cast<RedisLink*>(self)->want_read_ = false; };
    ctx->ev.addWrite = [](void* self) { static_cast<RedisLink*>(self)->want_write_ = true; };
    ctx->ev.delWrite = [](void* self) { static_cast<RedisLink*>(self)->want_write_ = false; };
    ctx->ev.cleanup = [](void* self) {
        auto* link = static_cast<RedisLink*>(self);
        link->want_read_ = link->want_write_ = false;
    };
    redisAsyncSetConnectCallback(ctx, &RedisLink::on_connect);
    redisAsyncSetDisconnectCallback(ctx, &RedisLink::on_disconnect);
}

void RedisLink::on_connect(const redisAsyncContext* ctx, int status) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr) return;
    if (status != REDIS_OK) {
        if (!link->unreachable_)
            log::warn("redis {}:{} unreachable: {}; retrying quietly", link->host_, link->port_, ctx->errstr);
        link->unreachable_ = true;
        link->ctx_ = nullptr;  // hiredis frees the context after this callback
        link->connected_ = false;
        return;
    }
    if (!link->login_.required()) return link->on_ready();
    // AUTH goes first; nothing else is sent before its answer (connected() is still false).
    send_login(link->ctx_, link->login_, &RedisLink::on_auth);
}

void RedisLink::on_auth(redisAsyncContext* ctx, void* reply, void*) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr || reply == nullptr) return;
    // Refused: the link drops the connection and tries again after RECONNECT_DELAY.
    if (!link->login_state_.accepted(*static_cast<const redisReply*>(reply), link->login_,
                                     fmt::format("redis {}:{}", link->host_, link->port_)))
        return redisAsyncDisconnect(ctx);
    link->on_ready();
}

void RedisLink::on_ready() {
    connected_ = true;
    unreachable_ = false;
    log::info("redis {}:{} connected{}", host_, port_, login_.required() ? " as " + login_.user : "");
}

void RedisLink::on_disconnect(const redisAsyncContext* ctx, int status) {
    RedisLink* link = link_of(ctx);
    if (link == nullptr) return;
    if (status != REDIS_OK) log::warn("redis {}:{} connection lost: {}", link->host_, link->port_, ctx->errstr);
    link->ctx_ = nullptr;
    link->connected_ = false;
    link->want_read_ = link->want_write_ = false;
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

std::string reply_error(const redisReply* r) {
    if (r == nullptr) return "connection lost";
    if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
    return "unexpected reply";
}

}  // namespace sluice::broker
