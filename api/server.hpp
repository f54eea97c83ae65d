// The HTTP server of sluice-api: one share-nothing shard per thread (own io_context, listener,
// Redis connections, broker link; shard.hpp), plus graceful shutdown.
//
// Thread-safety: construct, bind(), start(), join() from one thread; shutdown() from any thread.
#pragma once

#include "config.hpp"
#include "connection_counts.hpp"
#include "metrics.hpp"
#include "rate_limits.hpp"

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace sluice::api {

class Shard;

class Server {
public:
    explicit Server(ApiConfig config);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Creates the shards and binds their listeners. Returns the bound port (useful with
    // port 0). Throws std::system_error when the address cannot be bound.
    std::uint16_t bind();
    // Connects each shard's broker link, waits up to a second for them to connect (so the first
    // requests do not answer 503 while the handshake runs), then starts one loop thread per shard.
    void start();
    // Begins graceful shutdown in every shard: stop accepting, finish in-flight requests
    // (up to config.shutdown_grace), close SSE streams. Thread-safe; returns at once.
    void shutdown();
    // Waits until every shard has stopped.
    void join();

private:
    ApiConfig config_;
    ConnectionCounts connections_;  // open HTTP connections, all shards
    RateLimits request_limits_;  // requests per second per key, all shards
    ApiMetrics metrics_;  // GET /metrics, all shards
    std::unique_ptr<trace::SpanExporter> spans_;  // with config_.tracing only; all shards
    std::vector<std::unique_ptr<Shard>> shards_;
    std::vector<std::thread> threads_;
};

}  // namespace sluice::api
