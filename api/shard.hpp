// One event-loop thread's worth of sluice-api: its listener and accept loop, its Redis
// subscription to job notices, the shard's tick, and graceful shutdown. Sessions, routes and
// event streams work on the ShardContext it owns.
// Thread-safety: construct, bind() and start_broker() from the thread that builds the shards,
// before run(); request_shutdown() from any thread; everything else is the loop's.
#pragma once

#include "config.hpp"
#include "http_session.hpp"
#include "shard_context.hpp"

#include <cstdint>
#include <optional>

namespace sluice::api {

class Shard {
public:
    Shard(const ApiConfig& config, int index, ConnectionCounts& connections, RateLimits& request_limits,
          ApiMetrics& metrics, trace::SpanExporter* spans, zmq::context_t& zmq_ctx);

    // Opens the listener on `port` (0 = any). Returns the bound port. Throws std::system_error
    // when the address cannot be bound.
    std::uint16_t bind(std::uint16_t port, bool reuse_port);
    // Connects the broker link.
    void start_broker();
    // Waits (blocking) until the broker link is connected or `deadline` passes; see Server::start.
    bool wait_broker(Clock::time_point deadline);
    // The shard's loop; returns once shutdown has finished everything.
    void run();
    // Thread-safe: asks the shard to shut down gracefully.
    void request_shutdown();

private:
    awaitable<void> accept_loop();
    // Once per TICK_INTERVAL: passes the tick to the notifier's waiters (event streams whose
    // re-check, keep-alive or write deadline is due), so an open stream needs no timer.
    void tick();
    // Shutdown, step 1: stop accepting, close idle connections, wake long polls and SSE
    // streams (they answer/close), then wait for in-flight requests up to the grace period.
    void begin_shutdown();
    // Shutdown, step 2: every 20 ms until no connection is left or the grace period is over.
    void await_sessions();
    // Shutdown, step 3: close whatever is left so every coroutine ends and run() returns.
    void finish_shutdown();

    ShardContext ctx_;  // first member: its io_context is destroyed last
    int index_;
    tcp::acceptor acceptor_;
    RedisConnection subscriber_;  // SUBSCRIBE sluice:notify, feeds ctx_.notifier
    // With SLUICE_REDIS_SENTINELS: SUBSCRIBE +switch-master on one sentinel, so both Redis
    // connections leave a master the sentinels have replaced even when nothing closed them (a
    // partition). Asking the sentinels on every connect is what makes it correct; this only
    // makes it quicker.
    std::optional<RedisConnection> sentinel_watch_;
    Sessions sessions_;
    asio::steady_timer tick_timer_;
    asio::steady_timer shutdown_timer_;
    Clock::time_point shutdown_deadline_{};
};

}  // namespace sluice::api
