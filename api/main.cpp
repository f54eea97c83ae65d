// sluice-api: reads ApiConfig from the environment, binds, prints the listening line, serves
// until SIGINT/SIGTERM, then shuts down gracefully and exits 0.
#include "config.hpp"
#include "log.hpp"
#include "server.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

using sluice::api::ApiConfig;

// Extra time past the shutdown grace before a stuck shutdown is cut short.
constexpr auto SHUTDOWN_WATCHDOG = std::chrono::seconds(5);

const char* env(const char* name) {
    const char* value = std::getenv(name);
    return value && *value ? value : nullptr;
}

// Reads an integer variable in [min, max]; exits with a message on a bad value.
template <class T>
void read_int(const char* name, T& out, long long min, long long max) {
    const char* text = env(name);
    if (!text) return;
    long long value = 0;
    const char* end = text + std::char_traits<char>::length(text);
    auto [ptr, ec] = std::from_chars(text, end, value);
    if (ec != std::errc() || ptr != end || value < min || value > max) {
        std::fprintf(stderr, "sluice-api: %s must be an integer in %lld..%lld, got '%s'\n", name, min,
                     max, text);
        std::exit(2);
    }
    out = static_cast<T>(value);
}

ApiConfig config_from_env() {
    ApiConfig c;
    if (const char* v = env("SLUICE_API_HOST")) c.host = v;
    read_int("SLUICE_API_PORT", c.port, 0, 65535);
    if (const char* v = env("SLUICE_BROKER_API_ENDPOINT")) c.broker_endpoint = v;
    if (const char* v = env("SLUICE_REDIS_HOST")) c.redis_host = v;
    read_int("SLUICE_REDIS_PORT", c.redis_port, 1, 65535);
    read_int("SLUICE_API_MAX_BODY", c.max_body, 1, 1LL << 32);
    read_int("SLUICE_API_MAX_CONNECTIONS", c.max_connections, 1, 1000000);
    long long timeout_ms = c.broker_timeout.count();
    read_int("SLUICE_BROKER_TIMEOUT_MS", timeout_ms, 1, 600000);
    c.broker_timeout = std::chrono::milliseconds(timeout_ms);
    long long request_timeout_ms = c.request_timeout.count();
    read_int("SLUICE_API_REQUEST_TIMEOUT_MS", request_timeout_ms, 100, 3600000);
    c.request_timeout = std::chrono::milliseconds(request_timeout_ms);
    long long keepalive_ms = c.sse_keepalive.count();
    read_int("SLUICE_API_SSE_KEEPALIVE_MS", keepalive_ms, 100, 3600000);
    c.sse_keepalive = std::chrono::milliseconds(keepalive_ms);
    read_int("SLUICE_API_THREADS", c.threads, 1, 256);
    if (const char* v = env("SLUICE_LOG_LEVEL")) c.log_level = v;
    return c;
}

}  // namespace

int main() {
    const ApiConfig config = config_from_env();
    sluice::log::init("api", sluice::log::parse_level(config.log_level));

    // Every thread started from here on inherits a mask with SIGINT/SIGTERM blocked; the main
    // thread takes them with sigwait. SIGPIPE is ignored: a vanished client is an error value.
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

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
    sluice::log::info("listening on {}:{} ({} thread(s)), broker {}, redis {}:{}", config.host, port,
                      config.threads, config.broker_endpoint, config.redis_host, config.redis_port);

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
