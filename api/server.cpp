// sluice-api's server: one share-nothing shard per thread (see server.hpp and shard.hpp).
#include "server.hpp"

#include "log.hpp"
#include "routes.hpp"
#include "shard.hpp"

#include <algorithm>

namespace sluice::api {

namespace {

// How long start() waits for the broker links to connect. Their handshake (CURVE: a few key
// exchanges and the broker's allow-list check) takes milliseconds; without the wait, requests
// that arrive meanwhile would answer 503. A broker that is down delays the start by this much.
constexpr std::chrono::seconds BROKER_CONNECT_WAIT{1};

zmq::context_t& zmq_context() {
    static zmq::context_t context(1);
    return context;
}

// The labels of the metrics' routes, in the order of the routing table, then the dashboard's
// files (UI_PREFIX and what is under it) as one route.
std::vector<ApiMetrics::RouteLabel> route_labels() {
    std::vector<ApiMetrics::RouteLabel> labels;
    for (const Route& route : routes()) labels.push_back({route.method, route.pattern});
    labels.push_back({"GET", "/ui/*"});
    return labels;
}

}  // namespace

Server::Server(ApiConfig config)
    : config_(std::move(config)),
      connections_({config_.max_connections, config_.max_connections_per_client, config_.reserved_connections(),
                    config_.reserve_client_connections}),
      metrics_(route_labels()),
      spans_(config_.tracing ? std::make_unique<trace::SpanExporter>(*config_.tracing) : nullptr) {}

Server::~Server() {
    shutdown();
    join();
}

std::uint16_t Server::bind() {
    const int count = std::max(1, config_.threads);
    std::uint16_t port = config_.port;
    for (int i = 0; i < count; ++i) {
        auto shard = std::make_unique<Shard>(config_, i, connections_, request_limits_, metrics_, spans_.get(),
                                             zmq_context());
        // SO_REUSEPORT only when several shards share the port: a lone listener should never
        // share a port picked for it with some other process.
        port = shard->bind(port, count > 1);
        shards_.push_back(std::move(shard));
    }
    return port;
}

void Server::start() {
    for (auto& shard : shards_) shard->start_broker();
    const auto deadline = Clock::now() + BROKER_CONNECT_WAIT;
    bool connected = true;
    for (auto& shard : shards_) connected = shard->wait_broker(deadline) && connected;
    if (!connected) log::warn("no broker connected yet: submits answer 503 until one is");
    for (auto& shard : shards_) threads_.emplace_back([s = shard.get()] { s->run(); });
}

void Server::shutdown() {
    for (auto& shard : shards_) shard->request_shutdown();
}

void Server::join() {
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

}  // namespace sluice::api
