// The life cycle of one api shard (see shard.hpp).
#include "shard.hpp"

#include "job_reads.hpp"
#include "keys.hpp"
#include "log.hpp"
#include "webhooks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>


namespace sluice::api {
namespace {

using error_code = boost::system::error_code;

// How often a shard looks for event streams whose re-check or keep-alive is due: their
// deadlines are kept to this precision.
constexpr auto TICK_INTERVAL = std::chrono::seconds(1);
// How often shutdown looks whether every connection has finished.
constexpr auto SHUTDOWN_POLL = std::chrono::milliseconds(20);

// Pushes the deadline of every job this shard's clients follow (followers.hpp). A renewal
// that fails is retried by the next tick; the grace (2 s at least) outlasts a missed one.
awaitable<void> renew_followed(ShardContext& ctx) {
    for (auto& command : ctx.followers.renewals(wall_now_ms())) {
        const RedisValue reply = co_await ctx.redis.command(std::move(command), REDIS_TIMEOUT);
        if (!reply.ok()) co_return;
    }
}

}  // namespace

Shard::Shard(const ApiConfig& config, int index, ConnectionCounts& connections, RateLimits& request_limits,
             ApiMetrics& metrics, trace::SpanExporter* spans, zmq::context_t& zmq_ctx)
    : ctx_(config, zmq_ctx, request_limits, metrics, spans),
      index_(index),
      acceptor_(ctx_.ioc),
      subscriber_(ctx_.ioc, config.redis_host, config.redis_port, config.redis_login, config.redis_sentinels, "subscriber"),
      sessions_(connections),
      tick_timer_(ctx_.ioc),
      shutdown_timer_(ctx_.ioc) {
    subscriber_.set_subscription(
        std::string(keys::NOTIFY_CHANNEL),
        [this](const std::string& payload) {
            if (auto notice = parse_notice(payload)) {
                ctx_.notifier.notify(notice->job_id, std::move(notice->event));
            } else {
                log::warn("dropped a malformed notice on {} ({} bytes)", keys::NOTIFY_CHANNEL, payload.size());
            }
        },
        // After a (re)subscribe notices may have been missed: everybody re-reads.
        [this] { ctx_.notifier.notify_all(); });
    if (config.redis_sentinels) {
        // Shards watch different sentinels, so one sentinel down slows only some shards' notice.
        const sentinel::Config& sentinels = *config.redis_sentinels;
        const sentinel::Address& at = sentinels.sentinels[static_cast<std::size_t>(index) % sentinels.sentinels.size()];
        sentinel_watch_.emplace(ctx_.ioc, at.host, at.port, config.redis_login, std::nullopt, "sentinel watch");
        sentinel_watch_->set_subscription(
            std::string(sentinel::SWITCH_CHANNEL),
            [this, name = sentinels.master_name](const std::string& message) {
                if (auto master = sentinel::switched_master(message, name)) {
                    ctx_.redis.follow(*master);
                    subscriber_.follow(*master);
                }
            },
            [] {});
    }
}

std::uint16_t Shard::bind(std::uint16_t port, bool reuse_port) {
    const tcp::endpoint endpoint(asio::ip::make_address(ctx_.config.host), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    if (reuse_port) {
        using reuse_port_option = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
        acceptor_.set_option(reuse_port_option(true));
    }
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    return acceptor_.local_endpoint().port();
}

void Shard::start_broker() { ctx_.broker.start(); }

bool Shard::wait_broker(Clock::time_point deadline) { return ctx_.broker.wait_connected(deadline); }

void Shard::run() {
    ctx_.redis.start();
    subscriber_.start();
    if (sentinel_watch_) sentinel_watch_->start();
    tick();
    asio::co_spawn(ctx_.ioc, accept_loop(), log_failure("accept loop"));
    ctx_.ioc.run();
    ctx_.broker.stop();
}

void Shard::request_shutdown() {
    asio::post(ctx_.ioc, [this] { begin_shutdown(); });
}

awaitable<void> Shard::accept_loop() {
    for (;;) {
        error_code ec;
        tcp::endpoint peer;  // filled by accept itself: no getpeername per connection
        tcp::socket socket = co_await acceptor_.async_accept(peer, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ctx_.stopping || ec == asio::error::operation_aborted) co_return;
            log::warn("accept failed: {}", ec.message());
            // Out of file descriptors and the like: back off instead of spinning.
            asio::steady_timer pause(ctx_.ioc, std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        // Responses go out as several writes (head, SSE chunks): without TCP_NODELAY
        // Nagle holds each small one back until the client's delayed ACK, 40 ms.
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
        ConnectionCounts::Ticket ticket;
        const auto admission = webhooks::in_nets(mapped_bytes(peer.address()), ctx_.config.trusted_proxies)
                                   ? sessions_.admit_proxy(ticket)
                                   : sessions_.admit(client_key(peer.address()), ticket);
        if (admission != ConnectionCounts::Admission::ADMITTED) {
            if (sessions_.may_reject())
                asio::co_spawn(ctx_.ioc, reject_connection(sessions_, std::move(socket), admission),
                               log_failure("reject"));
            continue;  // else the socket closes as it goes out of scope
        }
        asio::co_spawn(ctx_.ioc, serve_connection(ctx_, sessions_, std::move(socket), std::move(ticket)),
                       log_failure("session"));
    }
}

void Shard::tick() {
    ctx_.notifier.tick(Clock::now());
    if (ctx_.followers.size() > 0) asio::co_spawn(ctx_.ioc, renew_followed(ctx_), log_failure("renew followed"));
    tick_timer_.expires_after(TICK_INTERVAL);
    tick_timer_.async_wait([this](error_code ec) {
        if (!ec && !ctx_.stopping) tick();
    });
}

void Shard::begin_shutdown() {
    if (ctx_.stopping) return;
    ctx_.stopping = true;
    log::info("shard {}: shutting down", index_);
    error_code ec;
    acceptor_.close(ec);
    sessions_.close_idle();
    ctx_.notifier.notify_all();
    shutdown_deadline_ = Clock::now() + ctx_.config.shutdown_grace;
    await_sessions();
}

void Shard::await_sessions() {
    if (sessions_.empty() || Clock::now() >= shutdown_deadline_) {
        finish_shutdown();
        return;
    }
    shutdown_timer_.expires_after(SHUTDOWN_POLL);
    shutdown_timer_.async_wait([this](error_code ec) {
        if (!ec) await_sessions();
    });
}

void Shard::finish_shutdown() {
    sessions_.close_all();
    ctx_.broker.cancel_all();
    tick_timer_.cancel();
    ctx_.notifier.notify_all();
    ctx_.redis.stop();
    subscriber_.stop();
    if (sentinel_watch_) sentinel_watch_->stop();
}

}  // namespace sluice::api
