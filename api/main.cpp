// sluice-api: reads ApiConfig from the environment, binds, prints the listening line, serves
// until SIGINT/SIGTERM, then shuts down gracefully and exits 0.
#include "config.hpp"
#include "curve.hpp"
#include "env.hpp"
#include "log.hpp"
#include "server.hpp"
#include "signals.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

namespace {

using sluice::api::ApiConfig;

// Extra time past the shutdown grace before a stuck shutdown is cut short.
constexpr auto SHUTDOWN_WATCHDOG = std::chrono::seconds(5);

ApiConfig config_from_env() {
    using std::chrono::milliseconds;
    ApiConfig c;
    c.host = sluice::env_string("SLUICE_API_HOST", c.host);
    c.port = static_cast<std::uint16_t>(sluice::env_int("SLUICE_API_PORT", 0, 65535, c.port));
    c.broker_endpoint = sluice::env_string("SLUICE_BROKER_API_ENDPOINT", c.broker_endpoint);
    c.broker_keys = sluice::curve::env_client_keys("SLUICE_BROKER_API_ENDPOINT", c.broker_endpoint);
    c.redis_host = sluice::env_string("SLUICE_REDIS_HOST", c.redis_host);
    c.redis_port = static_cast<int>(sluice::env_int("SLUICE_REDIS_PORT", 1, 65535, c.redis_port));
    c.redis_login = sluice::redis_login_from_env();
    c.max_body = static_cast<std::size_t>(
        sluice::env_int("SLUICE_API_MAX_BODY", 1, 1LL << 32, static_cast<long long>(c.max_body)));
    c.max_input_bytes = static_cast<std::size_t>(sluice::env_int(
        "SLUICE_MAX_INPUT_BYTES", 1, static_cast<long long>(c.max_body),
        static_cast<long long>(std::min(c.max_input_bytes, c.max_body))));
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
    c.threads = static_cast<int>(sluice::env_int("SLUICE_API_THREADS", 1, 256, c.threads));
    c.log_level = sluice::env_string("SLUICE_LOG_LEVEL", c.log_level);
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
    sluice::log::info("listening on {}:{} ({} thread(s)), broker {} (CURVE {}), redis {}:{}", config.host, port,
                      config.threads, config.broker_endpoint, config.broker_keys ? "on" : "off", config.redis_host,
                      config.redis_port);

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
