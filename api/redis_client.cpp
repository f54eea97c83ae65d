// hiredis async attached to Asio (see redis_client.hpp).
//
// hiredis tells us through five hooks when it wants to read or write its socket; the Adapter
// turns each into a one-shot async_wait on a stream_descriptor wrapping hiredis's fd and calls
// redisAsyncHandleRead/Write when the socket is ready. hiredis owns the fd: the descriptor is
// release()d, never closed, when hiredis cleans up.
#include "redis_client.hpp"

#include "log.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace sluice::api {
namespace {

// Reconnect delays: start fast so a Redis restart is barely noticed, cap so a long outage costs
// one connect attempt every 2 s per connection.
constexpr auto BACKOFF_MIN = std::chrono::milliseconds(100);
constexpr auto BACKOFF_MAX = std::chrono::milliseconds(2000);
// A connect that has not completed by then (e.g. SYNs into a black hole) is abandoned and retried.
constexpr auto CONNECT_TIMEOUT = std::chrono::milliseconds(2000);

RedisValue unavailable(std::string why) {
    RedisValue v;
    v.kind = RedisValue::Kind::UNAVAILABLE;
    v.str = std::move(why);
    return v;
}

RedisValue convert(const redisReply* r) {
    RedisValue v;
    switch (r->type) {
        case REDIS_REPLY_STRING: v.kind = RedisValue::Kind::STRING; break;
        case REDIS_REPLY_STATUS: v.kind = RedisValue::Kind::STATUS; break;
        case REDIS_REPLY_ERROR: v.kind = RedisValue::Kind::ERROR; break;
        case REDIS_REPLY_INTEGER: v.kind = RedisValue::Kind::INTEGER; break;
        case REDIS_REPLY_ARRAY: v.kind = RedisValue::Kind::ARRAY; break;
        default: v.kind = RedisValue::Kind::NIL; break;
    }
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
        v.str.assign(r->str, r->len);
    if (r->type == REDIS_REPLY_INTEGER) v.integer = r->integer;
    if (r->type == REDIS_REPLY_ARRAY) {
        v.elements.reserve(r->elements);
        for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(convert(r->element[i]));
    }
    return v;
}

// Hands one command (binary-safe arguments) to hiredis, which copies it into its output
// buffer. Not a coroutine: the argument pointers live on the stack, not in a coroutine frame.
bool issue(redisAsyncContext* ctx, const std::vector<std::string>& args, redisCallbackFn* callback,
           void* privdata) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    return redisAsyncCommandArgv(ctx, callback, privdata, static_cast<int>(argv.size()), argv.data(),
                                 lens.data()) == REDIS_OK;
}

}  // namespace

// The five hiredis event hooks for one redisAsyncContext. Shared-owned so that async_wait
// handlers still pending after hiredis's cleanup find a live object (with ctx == nullptr).
class RedisConnection::Adapter : public std::enable_shared_from_this<Adapter> {
public:
    Adapter(asio::io_context& ioc, redisAsyncContext* ctx) : descriptor_(ioc, ctx->c.fd), ctx_(ctx) {}

    void attach() {
        ctx_->ev.data = this;
        ctx_->ev.addRead = [](void* p) { static_cast<Adapter*>(p)->set_read(true); };
        ctx_->ev.delRead = [](void* p) { static_cast<Adapter*>(p)->set_read(false); };
        ctx_->ev.addWrite = [](void* p) { static_cast<Adapter*>(p)->set_write(true); };
        ctx_->ev.delWrite = [](void* p) { static_cast<Adapter*>(p)->set_write(false); };
        ctx_->ev.cleanup = [](void* p) { static_cast<Adapter*>(p)->cleanup(); };
    }

private:
    void set_read(bool on) {
        want_read_ = on;
        if (on) arm_read();
    }
    void set_write(bool on) {
        want_write_ = on;
        if (on) arm_write();
    }

    void arm_read() {
        if (read_armed_ || !ctx_) return;
        read_armed_ = true;
        descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                               [self = shared_from_this()](boost::system::error_code ec) {
                                   self->read_armed_ = false;
                                   if (ec || !self->ctx_ || !self->want_read_) return;
                                   redisAsyncHandleRead(self->ctx_);  // may end in cleanup()
                                   if (self->ctx_ && self->want_read_) self->arm_read();
                               });
    }

    void arm_write() {
        if (write_armed_ || !ctx_) return;
        write_armed_ = true;
        descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                               [self = shared_from_this()](boost::system::error_code ec) {
                                   self->write_armed_ = false;
                                   if (ec || !self->ctx_ || !self->want_write_) return;
                                   redisAsyncHandleWrite(self->ctx_);  // may end in cleanup()
                                   if (self->ctx_ && self->want_write_) self->arm_write();
                               });
    }

    // hiredis is about to free the context and close the fd: forget both.
    void cleanup() {
        ctx_ = nullptr;
        want_read_ = want_write_ = false;
        boost::system::error_code ignored;
        descriptor_.cancel(ignored);
        (void)descriptor_.release();
    }

    asio::posix::stream_descriptor descriptor_;
    redisAsyncContext* ctx_;
    bool want_read_ = false, want_write_ = false;
    bool read_armed_ = false, write_armed_ = false;
};

// One command in flight; shared by the awaiting coroutine and the hiredis callback.
struct RedisConnection::Call {
    explicit Call(asio::io_context& ioc) : waiter(ioc) {}
    Waiter waiter;
    std::optional<RedisValue> value;
};

// A pipelined batch in flight: one slot per command, and how many replies are still due.
struct RedisConnection::Batch {
    Batch(asio::io_context& ioc, std::size_t n) : waiter(ioc), values(n), due(n) {}
    Waiter waiter;
    std::vector<std::optional<RedisValue>> values;
    std::size_t due;
    // What hiredis carries back to handle_batch_reply for one command: batch and index.
    using Slot = std::pair<std::shared_ptr<Batch>, std::size_t>;
};

RedisConnection::RedisConnection(asio::io_context& ioc, std::string host, int port, RedisLogin login,
                                 std::optional<sentinel::Config> sentinels, std::string name)
    : ioc_(ioc),
      host_(std::move(host)),
      port_(port),
      login_(std::move(login)),
      sentinels_(std::move(sentinels)),
      name_(std::move(name)),
      retry_timer_(ioc),
      connect_timer_(ioc),
      backoff_(BACKOFF_MIN) {
    if (sentinels_) rotation_.emplace(sentinels_->sentinels);
}

RedisConnection::~RedisConnection() { stop(); }

void RedisConnection::set_subscription(std::string channel,
                                       std::function<void(const std::string&)> on_message,
                                       std::function<void()> on_subscribed) {
    channel_ = std::move(channel);
    on_message_ = std::move(on_message);
    on_subscribed_ = std::move(on_subscribed);
}

void RedisConnection::start() {
    stopped_ = false;
    connect();
}

void RedisConnection::stop() {
    stopped_ = true;
    retry_timer_.cancel();
    connect_timer_.cancel();
    if (ctx_) {
        redisAsyncContext* ctx = ctx_;
        ctx_ = nullptr;
        connected_ = false;
        redisAsyncFree(ctx);  // pending callbacks get a NULL reply -> UNAVAILABLE
    }
    adapter_.reset();
}

void RedisConnection::follow(const sentinel::Address& master) {
    if (!sentinels_ || peer_ != Peer::MASTER || ctx_ == nullptr || (master.host == host_ && master.port == port_))
        return;
    log::warn("{}: the sentinels moved master '{}' to {}:{}; reconnecting", where(), sentinels_->master_name,
              master.host, master.port);
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    connected_ = false;
    connect_timer_.cancel();
    // Pending commands answer UNAVAILABLE; a connected context's disconnect callback schedules
    // the reconnect, one still connecting has none.
    const bool calls_back = (ctx->c.flags & REDIS_CONNECTED) != 0;
    redisAsyncFree(ctx);
    if (!calls_back) schedule_reconnect();
}

void RedisConnection::connect() {
    if (stopped_) return;
    // With sentinels, every connect to the master follows a fresh answer: the master may have
    // moved while the connection was down, and a master found before is not trusted again.
    if (rotation_ && !master_known_) {
        peer_ = Peer::SENTINEL;
        return open(rotation_->current().host, rotation_->current().port);
    }
    master_known_ = false;
    peer_ = Peer::MASTER;
    open(host_, port_);
}

std::string RedisConnection::where() const {
    if (peer_ == Peer::SENTINEL)
        return fmt::format("redis {}: sentinel {}:{}", name_, rotation_->current().host, rotation_->current().port);
    return fmt::format("redis {}: {}:{}", name_, host_, port_);
}

void RedisConnection::open(const std::string& host, int port) {
    redisAsyncContext* ctx = redisAsyncConnect(host.c_str(), port);
    if (!ctx) {
        log::warn("redis {}: out of memory creating a context", name_);
        schedule_reconnect();
        return;
    }
    if (ctx->err) {
        const std::string why = ctx->errstr;
        redisAsyncFree(ctx);
        if (peer_ == Peer::SENTINEL) return sentinel_failed(why.c_str());
        log::warn("{}: cannot connect: {}", where(), why);
        schedule_reconnect();
        return;
    }
    ctx_ = ctx;
    ctx->data = this;
    adapter_ = std::make_shared<Adapter>(ioc_, ctx);
    adapter_->attach();  // hooks first: setting the connect callback already asks to write
    redisAsyncSetConnectCallback(ctx, &RedisConnection::handle_connect);
    redisAsyncSetDisconnectCallback(ctx, &RedisConnection::handle_disconnect);
    connect_timer_.expires_after(CONNECT_TIMEOUT);
    connect_timer_.async_wait([this, ctx](boost::system::error_code ec) {
        if (ec || connected_ || ctx_ != ctx) return;
        ctx_ = nullptr;
        redisAsyncFree(ctx);  // never connected: no disconnect callback follows
        if (peer_ == Peer::SENTINEL) return sentinel_failed("connect timed out");
        log::warn("{}: connect timed out", where());
        schedule_reconnect();
    });
}

void RedisConnection::reconnect_now() {
    if (stopped_) return;
    retry_timer_.expires_after(Clock::duration::zero());
    retry_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) connect();
    });
}

void RedisConnection::sentinel_failed(const char* why) {
    log::debug("{}: {}", where(), why ? why : "?");
    if (rotation_->failed()) return reconnect_now();
    log::warn("redis {}: no sentinel named master '{}' (asked {}; the last: {}); asking again", name_,
              sentinels_->master_name, sentinels_->sentinels.size(), why ? why : "?");
    schedule_reconnect();
}

void RedisConnection::schedule_reconnect() {
    if (stopped_) return;
    retry_timer_.expires_after(backoff_);
    backoff_ = std::min<Clock::duration>(backoff_ * 2, BACKOFF_MAX);
    retry_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) connect();
    });
}

void RedisConnection::handle_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    if (status != REDIS_OK) {
        // hiredis frees the context right after this callback returns.
        self->ctx_ = nullptr;
        self->connect_timer_.cancel();
        if (self->peer_ == Peer::SENTINEL) return self->sentinel_failed(ac->errstr);
        self->on_lost(ac->errstr);
        return;
    }
    self->on_connected();
}

void RedisConnection::handle_disconnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    self->ctx_ = nullptr;
    if (self->stopped_) return;
    if (self->peer_ == Peer::SENTINEL) {
        if (self->master_known_) return self->reconnect_now();  // on to the master
        return self->sentinel_failed(status == REDIS_OK ? "no answer" : ac->errstr);
    }
    self->on_lost(status == REDIS_OK ? "closed" : ac->errstr);
}

void RedisConnection::on_connected() {
    connect_timer_.cancel();
    if (!login_.required()) return on_logged_in();
    // AUTH goes first; nothing else is sent before its answer (connected_ is still false).
    send_login(ctx_, login_, &RedisConnection::handle_auth);
}

void RedisConnection::handle_auth(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    if (reply == nullptr || self == nullptr || self->stopped_) return;
    LoginState& state = self->peer_ == Peer::SENTINEL ? self->sentinel_login_state_ : self->login_state_;
    // Refused: the connection is dropped and retried with the usual backoff (a sentinel: the
    // next one is asked).
    if (!state.accepted(*static_cast<const redisReply*>(reply), self->login_, self->where()))
        return redisAsyncDisconnect(ac);
    self->on_logged_in();
}

void RedisConnection::on_logged_in() {
    if (!sentinel::after_login(ctx_, peer_ == Peer::SENTINEL, sentinels_, &RedisConnection::handle_master_addr,
                               &RedisConnection::handle_role))
        on_ready();
}

void RedisConnection::handle_master_addr(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    if (reply == nullptr || self == nullptr || self->stopped_) return;
    self->master_known_ = sentinel::take_master(static_cast<redisReply*>(reply), self->sentinels_->master_name,
                                                self->where(), *self->rotation_, self->host_, self->port_);
    // handle_disconnect goes on: to the master, or to the next sentinel.
    redisAsyncDisconnect(ac);
}

void RedisConnection::handle_role(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    if (reply == nullptr || self == nullptr || self->stopped_) return;
    const auto* role = static_cast<const redisReply*>(reply);
    if (sentinel::is_master_role(role)) return self->on_ready();
    log::warn("{}: not a master (ROLE: {}); asking the sentinels again", self->where(), sentinel::role_of(role));
    redisAsyncDisconnect(ac);
}

void RedisConnection::on_ready() {
    connected_ = true;
    backoff_ = BACKOFF_MIN;
    log::info("{}: connected{}", where(), login_.required() ? " as " + login_.user : "");
    if (!channel_.empty()) {
        const char* argv[] = {"SUBSCRIBE", channel_.c_str()};
        const size_t lens[] = {9, channel_.size()};
        redisAsyncCommandArgv(ctx_, &RedisConnection::handle_message, this, 2, argv, lens);
    }
}

void RedisConnection::on_lost(const char* why) {
    const bool was_connected = connected_;
    connected_ = false;
    if (was_connected)
        log::warn("redis {}: connection lost ({}); reconnecting", name_, why ? why : "?");
    else
        log::debug("redis {}: connect failed ({})", name_, why ? why : "?");
    schedule_reconnect();
}

void RedisConnection::handle_message(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<RedisConnection*>(ac->data);
    auto* r = static_cast<redisReply*>(reply);
    if (!r || !self || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const redisReply* kind = r->element[0];
    const redisReply* payload = r->element[2];
    if (kind->type != REDIS_REPLY_STRING) return;
    const std::string_view k(kind->str, kind->len);
    if (k == "subscribe") {
        log::debug("redis {}: subscribed to {}", self->name_, self->channel_);
        if (self->on_subscribed_) self->on_subscribed_();
    } else if (k == "message" && payload->type == REDIS_REPLY_STRING) {
        if (self->on_message_) self->on_message_(std::string(payload->str, payload->len));
    }
}

void RedisConnection::handle_reply(redisAsyncContext*, void* reply, void* privdata) {
    std::unique_ptr<std::shared_ptr<Call>> call(static_cast<std::shared_ptr<Call>*>(privdata));
    (*call)->value = reply ? convert(static_cast<redisReply*>(reply)) : unavailable("connection lost");
    (*call)->waiter.wake();
}

awaitable<RedisValue> RedisConnection::command(std::vector<std::string> args,
                                               Clock::duration timeout) {
    if (!connected_ || !ctx_) co_return unavailable("not connected");
    auto call = std::make_shared<Call>(ioc_);
    auto* holder = new std::shared_ptr<Call>(call);
    const bool sent = issue(ctx_, args, &RedisConnection::handle_reply, holder);
    std::vector<std::string>().swap(args);  // hiredis has its own copy: free ours before waiting
    if (!sent) {
        delete holder;
        co_return unavailable("connection closing");
    }
    co_await woken_or_timeout(call->waiter, timeout);
    if (!call->value) co_return unavailable("timed out");
    co_return std::move(*call->value);
}

void RedisConnection::handle_batch_reply(redisAsyncContext*, void* reply, void* privdata) {
    std::unique_ptr<Batch::Slot> slot(static_cast<Batch::Slot*>(privdata));
    Batch* batch = slot->first.get();
    batch->values[slot->second] =
        reply ? convert(static_cast<redisReply*>(reply)) : unavailable("connection lost");
    if (--batch->due == 0) batch->waiter.wake();
}

awaitable<std::vector<RedisValue>> RedisConnection::pipeline(
    std::vector<std::vector<std::string>> commands, Clock::duration timeout) {
    std::vector<RedisValue> out;
    if (!connected_ || !ctx_) {
        out.assign(commands.size(), unavailable("not connected"));
        co_return out;
    }
    auto batch = std::make_shared<Batch>(ioc_, commands.size());
    // Issue every command before the first suspension: hiredis buffers them and writes them
    // in one go, and nothing else gets in between.
    const std::size_t count = commands.size();
    for (std::size_t i = 0; i < count; ++i) {
        auto* slot = new Batch::Slot(batch, i);
        if (!ctx_ || !issue(ctx_, commands[i], &RedisConnection::handle_batch_reply, slot)) {
            delete slot;
            for (std::size_t j = i; j < count; ++j) batch->values[j] = unavailable("connection closing");
            batch->due -= count - i;
            break;
        }
    }
    std::vector<std::vector<std::string>>().swap(commands);  // as in command()
    if (batch->due > 0) co_await woken_or_timeout(batch->waiter, timeout);
    out.reserve(batch->values.size());
    for (auto& value : batch->values)
        out.push_back(value ? std::move(*value) : unavailable("timed out"));
    co_return out;
}

}  // namespace sluice::api
