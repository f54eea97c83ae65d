// ApiConfig: every knob of sluice-api, with its default beside it. main.cpp fills it from the
// environment (variable named on each field); nothing else reads the environment.
#pragma once

#include "curve.hpp"
#include "limits.hpp"
#include "redis_login.hpp"
#include "sentinel.hpp"
#include "span_exporter.hpp"
#include "ui_files.hpp"
#include "webhooks.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sluice::api {

// Rate limits of an API key, per second (0: none), each with a burst of one second's worth
// (README.md, Security, "Rate limits").
struct Rates {
    std::uint32_t submits_per_s = 0;   // kept by the broker, across api instances
    std::uint32_t requests_per_s = 0;  // kept by each api instance (common/rate_limits.hpp)
};

struct ApiConfig {
    // SLUICE_API_HOST: address the HTTP listener binds.
    std::string host = "127.0.0.1";
    // SLUICE_API_PORT: HTTP port; 0 picks a free port (printed on the "listening" line).
    std::uint16_t port = 8080;
    // SLUICE_BROKER_API_ENDPOINT: the broker's frontend ROUTER (schemas/PROTOCOL.md, Sockets);
    // comma-separated, the leader's and its standbys' (README.md, "A standby broker"): the api
    // connects to every one, and only the leader has its sockets bound.
    std::vector<std::string> broker_endpoints = {"tcp://127.0.0.1:5555"};
    // SLUICE_CURVE_SECRET_KEY_FILE / SLUICE_BROKER_PUBLIC_KEY_FILE: this api's CURVE keypair
    // and the broker's public key (README.md, Security). None: no CURVE, only allowed when
    // broker_endpoints stay on this host.
    std::optional<curve::ClientKeys> broker_keys;
    // SLUICE_REDIS_HOST / SLUICE_REDIS_PORT: the Redis server holding job state.
    std::string redis_host = "127.0.0.1";
    int redis_port = 6399;
    // SLUICE_REDIS_USER / SLUICE_REDIS_PASSWORD_FILE: the login sent (AUTH) after every connect.
    RedisLogin redis_login;
    // SLUICE_REDIS_SENTINELS / SLUICE_REDIS_MASTER_NAME: the Redis Sentinels to ask where the
    // master is before every connect (README.md, Redis failover); set, they replace redis_host
    // and redis_port. None: Redis is at redis_host:redis_port.
    std::optional<sentinel::Config> redis_sentinels;
    // SLUICE_API_MAX_BODY: largest request body accepted, in bytes; past it 413 body_too_large.
    std::size_t max_body = limits::DEFAULT_MAX_BODY;
    // SLUICE_MAX_INPUT_BYTES (the broker and workers read it too): largest job input (POST /v1/jobs `input`, once converted to
    // msgpack) accepted; past it 413 input_too_large. Never above max_body (main.cpp lowers the
    // default to max_body when that is smaller).
    std::size_t max_input_bytes = limits::DEFAULT_MAX_INPUT;
    // SLUICE_MAX_SCHEDULES_PER_TENANT: cron schedules one tenant may hold (POST /v1/schedules);
    // past it 422 too_many_schedules. Each is polled by the broker and copies its job at every tick.
    std::size_t max_schedules_per_tenant = 100;
    // SLUICE_SCHEDULE_MAX_BYTES: largest POST /v1/schedules body, in bytes (the schedule's job is
    // stored with it and copied at every tick); past it 413 body_too_large. 64 KiB.
    std::size_t schedule_max_bytes = 64 * 1024;
    // SLUICE_API_MAX_CONNECTIONS: open HTTP connections across all threads; past it a new
    // connection gets 503 too_many_connections and is closed. The last eighth of them (128 of
    // 1024) is a reserve: a client already holding reserve_client_connections or more does not
    // get one of those, so a health check or a new client still gets in while many clients sit
    // at their per-client limit.
    std::size_t max_connections = 1024;
    // SLUICE_API_MAX_CONNECTIONS_PER_CLIENT: open connections of one client address (an IPv6
    // client's /64), across all threads; past it a new connection gets 429
    // too_many_connections_from_client and is closed. Never above max_connections. 128 leaves
    // room for a load generator's or a proxy pool's 64 connections; behind a reverse proxy that
    // connects from one address, list it in trusted_proxies.
    std::size_t max_connections_per_client = 128;
    // SLUICE_API_TRUSTED_PROXIES: networks (CIDR, comma-separated: "127.0.0.1/32,10.0.0.5/32")
    // of reverse proxies in front of this api (HAProxy: deploy/haproxy.cfg). A connection from
    // one counts against max_connections only: it carries many clients' requests, and the proxy
    // limits connections per client itself. Only the connection's own address is looked at: no
    // header (X-Forwarded-For, Forwarded) changes who a connection counts against. Empty: none.
    std::vector<webhooks::Net> trusted_proxies;
    // SLUICE_BROKER_TIMEOUT_MS: how long to wait for the broker's REPLY to SUBMIT/CANCEL before
    // answering 503 outcome_unknown (the request went out: the broker may have acted on it).
    std::chrono::milliseconds broker_timeout{5000};
    // SLUICE_API_REQUEST_TIMEOUT_MS: time a client gets to send one whole request (headers and
    // body), and to idle between keep-alive requests, so a trickling client cannot hold a
    // connection slot forever. Past it the connection is closed.
    std::chrono::milliseconds request_timeout{30000};
    // SLUICE_API_FIRST_BYTE_TIMEOUT_MS: time a new connection gets to send the first byte of its
    // first request before it is closed; shorter than request_timeout because a client that
    // connects and says nothing only holds a slot (browsers' speculative connections do, and so
    // does an attack). Never above request_timeout.
    std::chrono::milliseconds first_byte_timeout{5000};
    // SLUICE_API_SSE_KEEPALIVE_MS: an SSE stream silent this long gets a comment line, so
    // proxies and load balancers in between keep it open. Checked once a second.
    std::chrono::milliseconds sse_keepalive{15000};
    // SLUICE_API_WS_IDLE_TIMEOUT_MS: a WebSocket the client sends nothing on gets a ping at half
    // this, and is closed when the client has not answered (nor sent anything) by the end of
    // it, so a dead peer or a client that stopped reading is noticed.
    std::chrono::milliseconds ws_idle_timeout{30000};
    // SLUICE_API_WS_SEND_QUEUE_BYTES: messages waiting to be written to one WebSocket; an event
    // that would pass it closes the connection with 4000 (WS_CLOSE_SLOW): the client resumes
    // with last_seq. A replay from Redis fills at most half of it at once.
    std::size_t ws_send_queue_bytes = 1024 * 1024;
    // SLUICE_API_THREADS: event-loop threads; each is a share-nothing shard with its own
    // listener (SO_REUSEPORT), Redis connections and broker link. Default: one per core (on 2
    // cores two loops answer status lookups 48% and submits 19% faster than one; bench/).
    int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    // SLUICE_AUTH: `required` (every route but /healthz and /readyz needs an API key) or `off`
    // (the open development mode: tenant "default", admin rights). Unset means off, which the
    // api allows only on a loopback host (main.cpp).
    bool auth_required = false;
    // SLUICE_ADMIN_KEY: the first admin key (tenant "default"), to create the others with; only
    // its SHA-256 is kept. Empty: none.
    std::string admin_key_hash;
    // SLUICE_TOKEN_SECRET_FILE: the HMAC secret of read tokens, shared by every api instance
    // behind one address. Unset: a random one per process (tokens then open jobs on the
    // instance that gave them out only).
    std::string token_secret;
    // SLUICE_READ_TOKEN_TTL_S: how long a read token (in a submit's links) stays valid.
    std::chrono::seconds read_token_ttl{24 * 3600};
    // SLUICE_API_CORS_ORIGINS: browser origins ("https://app.example.com") allowed to call the
    // api: their preflights are answered and their responses carry the CORS headers. Empty:
    // none; a state-changing request from any other origin is 403 origin_not_allowed.
    std::vector<std::string> cors_origins;
    // SLUICE_KEY_SUBMITS_PER_S / SLUICE_KEY_REQUESTS_PER_S: the rate limits of a key that has
    // none of its own, and of the open mode's requests (per tenant); 0: none.
    Rates default_rates;
    // SLUICE_WEBHOOK_ALLOW_NETS: networks (CIDR, comma-separated: "10.1.0.0/16,fd00::/8") a
    // webhook URL may name by address although they are loopback, private or link-local. Empty:
    // none; the deliverer (python_workers/sluice/webhooks.py) reads the same variable.
    std::vector<webhooks::Net> webhook_allow_nets;
    // SLUICE_OTLP_ENDPOINT: where the submit spans go (span_exporter.hpp); none: no spans. Every
    // job keeps a traceparent either way.
    std::optional<trace::ExporterConfig> tracing;
    // SLUICE_LOG_LEVEL: debug, info, warn or error.
    std::string log_level = "info";
    // SLUICE_UI_DIR: the dashboard's files, served at /ui (ui_files.hpp), read once at start;
    // a directory that is missing or too big stops the start. Unset: the source tree's ui/
    // (main.cpp); `off`: no dashboard.
    UiFiles ui;

    // Not from the environment: fixed limits, named here so they are documented in one place.
    // Header block limit; past it 431 headers_too_large.
    std::size_t max_header_bytes = limits::MAX_HEADER_BYTES;
    // See max_connections: clients holding this many connections get none of the reserve.
    std::size_t reserve_client_connections = 4;
    std::size_t reserved_connections() const { return max_connections / 8; }
    // Largest message a WebSocket client may send (its messages are a few dozen bytes); past
    // it the connection is closed with 1009 (message too big).
    std::size_t ws_max_message_bytes = 4096;
    // Jobs one WebSocket may follow at once; past it a subscribe answers too_many_subscriptions.
    std::size_t ws_max_subscriptions = 1000;
    // Time a client gets to accept one response write (or one SSE event batch, or one
    // WebSocket message).
    std::chrono::milliseconds write_timeout{30000};
    // How long SIGINT/SIGTERM waits for in-flight requests before closing everything.
    std::chrono::milliseconds shutdown_grace{5000};
};

}  // namespace sluice::api
