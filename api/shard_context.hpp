// What every part of one api shard shares, as llama.cpp's server hands `server_context&` to
// its routes: the shard's loop, its config, its Redis connection for commands, its broker
// link, its notifier and whether it is shutting down. The Shard (shard.hpp) owns it and the
// accept loop, sessions (http_session.hpp), routes (routes.hpp), job reads (job_reads.hpp)
// and event streams (event_stream.hpp) take it by reference.
// Everything here belongs to the shard's loop thread and is not thread-safe.
#pragma once

#include "auth.hpp"
#include "broker_link.hpp"
#include "config.hpp"
#include "followers.hpp"
#include "metrics.hpp"
#include "loop.hpp"
#include "redis_client.hpp"
#include "rate_limits.hpp"
#include "rate_limited_log.hpp"
#include "span_exporter.hpp"
#include "type_schemas.hpp"

#include <zmq.hpp>

namespace sluice::api {

struct ShardContext {
    ShardContext(const ApiConfig& config, zmq::context_t& zmq_ctx, RateLimits& request_limits, ApiMetrics& metrics,
                 trace::SpanExporter* spans)
        : config(config),
          request_limits(request_limits),
          metrics(metrics),
          spans(spans),
          redis(ioc, config.redis_host, config.redis_port, config.redis_login, config.redis_sentinels, "commands"),
          broker(ioc, zmq_ctx, config.broker_endpoints, config.broker_keys) {}
    ShardContext(const ShardContext&) = delete;
    ShardContext& operator=(const ShardContext&) = delete;

    asio::io_context ioc{1};  // first member: destroyed last
    const ApiConfig& config;
    RateLimits& request_limits;  // shared by every shard of this instance
    ApiMetrics& metrics;         // shared by every shard of this instance
    trace::SpanExporter* spans;  // shared by every shard of this instance; nullptr: no spans
    RedisConnection redis;  // commands: job reads, event reads, PING
    BrokerLink broker;
    Notifier notifier;      // fed by the shard's sluice:notify subscription
    KeyCache key_cache;     // API keys read lately (auth.hpp)
    Followers followers;    // jobs this shard's clients follow that cancel when nobody does
    SchemaCache schemas;    // job types' input schemas read lately (type_schemas.hpp)
    log::RateLimited unchecked_inputs;  // inputs the validator gave up on
    bool stopping = false;  // graceful shutdown has begun: finish what is open, take no more
};

}  // namespace sluice::api
