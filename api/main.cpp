// sluice-api: reads ApiConfig from the environment, binds, prints the listening line, serves
// until SIGINT/SIGTERM, then shuts down gracefully and exits 0.
#include "config.hpp"
#include "credentials.hpp"
#include "curve.hpp"
#include "env.hpp"
#include "log.hpp"
#include "server.hpp"
#include "signals.hpp"

#include <fmt/ranges.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

namespace {

using sluice::api::ApiConfig;

// Extra time past the shutdown grace before a stuck shutdown is cut short.
constexpr auto SHUTDOWN_WATCHDOG = std::chrono::seconds(5);

bool loopback_host(const std::string& host) {
    return host == "localhost" || host == "::1" || host.starts_with("127.");
}

// SLUICE_AUTH, SLUICE_ADMIN_KEY, SLUICE_TOKEN_SECRET_FILE and SLUICE_READ_TOKEN_TTL_S.
void auth_from_env(ApiConfig& c) {
    const std::string auth = sluice::env_string("SLUICE_AUTH", "");
    if (auth != "" && auth != "off" && auth != "required")
        sluice::env_fail("SLUICE_AUTH", "must be 'required' or 'off', got '" + auth + "'");
    if (auth.empty() && !loopback_host(c.host))
        sluice::env_fail("SLUICE_AUTH", "is unset, and SLUICE_API_HOST " + c.host +
                                            " is not a loopback address: set SLUICE_AUTH=required to need API keys, "
                                            "or SLUICE_AUTH=off to serve everyone as an admin on purpose");
    c.auth_required = auth == "required";
    const std::string admin_key = sluice::env_string("SLUICE_ADMIN_KEY", "");
    if (!admin_key.empty() && admin_key.size() < 32)
        sluice::env_fail("SLUICE_ADMIN_KEY", "must be at least 32 characters (make one with: openssl rand -hex 32)");
    if (!admin_key.empty()) c.admin_key_hash = sluice::api::key_hash(admin_key);
    c.token_secret = sluice::env_secret_file("SLUICE_TOKEN_SECRET_FILE");
    if (c.token_secret.empty()) c.token_secret = sluice::api::random_hex(32);
    c.read_token_ttl = std::chrono::seconds(
        sluice::env_int("SLUICE_READ_TOKEN_TTL_S", 1, 30LL * 24 * 3600, c.read_token_ttl.count()));
}

// SLUICE_UI_DIR: the dashboard's files, or the source tree's ui/ (SLUICE_UI_DEFAULT_DIR, from
// CMake); `off`: none.
void ui_from_env(ApiConfig& c) {
    const std::string dir = sluice::env_string("SLUICE_UI_DIR", SLUICE_UI_DEFAULT_DIR);
    if (dir == "off") return;
    try {
        c.ui = sluice::api::UiFiles::load(dir);
    } catch (const std::exception& e) {
        sluice::env_fail("SLUICE_UI_DIR", std::string(e.what()) + " (SLUICE_UI_DIR=off serves no dashboard)");
    }
}

ApiConfig config_from_env() {
    using std::chrono::milliseconds;
    ApiConfig c;
    c.host = sluice::env_string("SLUICE_API_HOST", c.host);
    c.port = static_cast<std::uint16_t>(sluice::env_int("SLUICE_API_PORT", 0, 65535, c.port));
    c.broker_endpoints = sluice::curve::env_endpoints("SLUICE_BROKER_API_ENDPOINT", c.broker_endpoints.front());
    c.broker_keys = sluice::curve::env_client_keys("SLUICE_BROKER_API_ENDPOINT", c.broker_endpoints);
    c.redis_host = sluice::env_string("SLUICE_REDIS_HOST", c.redis_host);
    c.redis_port = static_cast<int>(sluice::env_int("SLUICE_REDIS_PORT", 1, 65535, c.redis_port));
    c.redis_login = sluice::redis_login_from_env();
    c.redis_sentinels = sluice::sentinel::config_from_env();
    c.max_body = static_cast<std::size_t>(
        sluice::env_int("SLUICE_API_MAX_BODY", 1, 1LL << 32, static_cast<long long>(c.max_body)));
    c.max_input_bytes = static_cast<std::size_t>(sluice::env_int(
        "SLUICE_MAX_INPUT_BYTES", 1, static_cast<long long>(c.max_body),
        static_cast<long long>(std::min(c.max_input_bytes, c.max_body))));
    c.max_schedules_per_tenant = static_cast<std::size_t>(sluice::env_int(
        "SLUICE_MAX_SCHEDULES_PER_TENANT", 0, 100000, static_cast<long long>(c.max_schedules_per_tenant)));
    c.schedule_max_bytes = static_cast<std::size_t>(sluice::env_int(
        "SLUICE_SCHEDULE_MAX_BYTES", 256, static_cast<long long>(c.max_body), static_cast<long long>(c.schedule_max_bytes)));
    c.max_connections = static_cast<std::size_t>(
        sluice::env_int("SLUICE_API_MAX_CONNECTIONS", 1, 1000000, static_cast<long long>(c.max_connections)));
    c.max_connections_per_client = static_cast<std::size_t>(sluice::env_int(
        "SLUICE_API_MAX_CONNECTIONS_PER_CLIENT", 1, static_cast<long long>(c.max_connections),
        static_cast<long long>(std::min(c.max_connections_per_client, c.max_connections))));
    c.broker_timeout = sluice::env_ms("SLUICE_BROKER_TIMEOUT_MS", milliseconds(1), milliseconds(600000), c.broker_timeout);
    c.request_timeout =
        sluice::env_ms("SLUICE_API_REQUEST_TIMEOUT_MS", milliseconds(100), milliseconds(3600000), c.request_timeout);
    c.first_byte_timeout = sluice::env_ms("SLUICE_API_FIRST_BYTE_TIMEOUT_MS", milliseconds(100), c.request_timeout,
                                          std::min(c.first_byte_timeout, c.request_timeout));
    c.sse_keepalive =
        sluice::env_ms("SLUICE_API_SSE_KEEPALIVE_MS", milliseconds(100), milliseconds(3600000), c.sse_keepalive);
    c.ws_idle_timeout =
        sluice::env_ms("SLUICE_API_WS_IDLE_TIMEOUT_MS", milliseconds(1000), milliseconds(3600000), c.ws_idle_timeout);
    c.ws_send_queue_bytes = static_cast<std::size_t>(sluice::env_int(
        "SLUICE_API_WS_SEND_QUEUE_BYTES", 4096, 1LL << 30, static_cast<long long>(c.ws_send_queue_bytes)));
    c.threads = static_cast<int>(sluice::env_int("SLUICE_API_THREADS", 1, 256, c.threads));
    c.log_level = sluice::env_string("SLUICE_LOG_LEVEL", c.log_level);
    c.cors_origins = sluice::env_list("SLUICE_API_CORS_ORIGINS");
    std::string bad_net;
    auto nets = sluice::webhooks::parse_nets(sluice::env_list("SLUICE_WEBHOOK_ALLOW_NETS"), bad_net);
    if (!nets) sluice::env_fail("SLUICE_WEBHOOK_ALLOW_NETS", "holds '" + bad_net + "', which is not a network in CIDR form");
    c.webhook_allow_nets = std::move(*nets);
    auto proxies = sluice::webhooks::parse_nets(sluice::env_list("SLUICE_API_TRUSTED_PROXIES"), bad_net);
    if (!proxies)
        sluice::env_fail("SLUICE_API_TRUSTED_PROXIES", "holds '" + bad_net + "', which is not a network in CIDR form");
    c.trusted_proxies = std::move(*proxies);
    c.default_rates.submits_per_s = static_cast<std::uint32_t>(sluice::env_int("SLUICE_KEY_SUBMITS_PER_S", 0, 1000000, 0));
    c.default_rates.requests_per_s = static_cast<std::uint32_t>(sluice::env_int("SLUICE_KEY_REQUESTS_PER_S", 0, 1000000, 0));
    c.tracing = sluice::trace::exporter_from_env("sluice-api");
    auth_from_env(c);
    ui_from_env(c);
    return c;
}

}  // namespace

int main() {
    const ApiConfig config = config_from_env();
    sluice::log::init("api", sluice::log::parse_level(config.log_level));

    // Every thread started from here on inherits a mask with SIGINT/SIGTERM blocked; the main
    // thread takes them with sigwait. SIGPIPE is ignored: a vanished client is an error value.
    ::signal(SIGPIPE, SIG_IGN);
    const sigset_t stop_signals = sluice::block_stop_signals();

    sluice::api::Server server(config);
    std::uint16_t port = 0;
    try {
        port = server.bind();
    } catch (const std::exception& e) {
        sluice::log::error("cannot listen on {}:{}: {}", config.host, config.port, e.what());
        return 1;
    }
    server.start();
    std::printf("sluice-api listening on http://%s:%u\n", config.host.c_str(), static_cast<unsigned>(port));
    std::fflush(stdout);
    sluice::log::info("listening on {}:{} ({} thread(s)), broker {} (CURVE {}), redis {}", config.host, port,
                      config.threads, fmt::join(config.broker_endpoints, ","), config.broker_keys ? "on" : "off",
                      config.redis_sentinels
                          ? fmt::format("master '{}' from {} sentinel(s)", config.redis_sentinels->master_name,
                                        config.redis_sentinels->sentinels.size())
                          : fmt::format("{}:{}", config.redis_host, config.redis_port));
    if (config.auth_required)
        sluice::log::info("auth required: every route but /healthz and /readyz needs an API key{}",
                          config.admin_key_hash.empty() ? "" : " (SLUICE_ADMIN_KEY is an admin key)");
    else
        sluice::log::warn("auth off (SLUICE_AUTH): anyone who reaches {}:{} acts as an admin of tenant 'default'",
                          config.host, port);
    if (config.tracing) sluice::log::info("tracing: spans go to {}", config.tracing->endpoint);
    if (sluice::env_string("SLUICE_TOKEN_SECRET_FILE", "").empty())
        sluice::log::info("no SLUICE_TOKEN_SECRET_FILE: read tokens open jobs on this api instance only");

    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    sluice::log::info("signal {}: shutting down", signal_number);
    std::thread([grace = config.shutdown_grace] {
        std::this_thread::sleep_for(grace + SHUTDOWN_WATCHDOG);
        sluice::log::error("shutdown did not finish in time; exiting");
        ::_exit(1);
    }).detach();
    server.shutdown();
    server.join();
    sluice::log::info("stopped");
    return 0;
}
