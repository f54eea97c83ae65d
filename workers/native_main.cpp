// sluice-worker-native: serves the native tasks (echo, sleep) to a Sluice broker.
// Reads its config from the environment, runs until SIGINT or SIGTERM, then stops gracefully.
//
//   SLUICE_BROKER_WORKER_ENDPOINT  broker backend endpoint   (default tcp://127.0.0.1:5556)
//   SLUICE_WORKER_CONCURRENCY      jobs run at once, 1..1024 (default 4)
//   SLUICE_WORKER_NAME             name sent in READY        (default <hostname>-<pid>)
//   SLUICE_LOG_LEVEL               debug|info|warn|error     (default info)
#include "log.hpp"
#include "native_tasks.hpp"
#include "runtime.hpp"

#include <csignal>
#include <cstdlib>
#include <exception>
#include <string>

namespace {

// Upper bound on SLUICE_WORKER_CONCURRENCY: each slot is an OS thread.
constexpr unsigned long MAX_CONCURRENCY = 1024;

const char* env_or(const char* name, const char* fallback) {
    const char* value = std::getenv(name);
    return value && *value ? value : fallback;
}

}  // namespace

int main() {
    using namespace sluice;
    log::init("worker-native", log::parse_level(env_or("SLUICE_LOG_LEVEL", "info")));

    worker::WorkerConfig config;
    config.broker_endpoint =
        env_or("SLUICE_BROKER_WORKER_ENDPOINT", config.broker_endpoint.c_str());
    config.name = env_or("SLUICE_WORKER_NAME", "");
    if (const char* text = std::getenv("SLUICE_WORKER_CONCURRENCY"); text && *text) {
        char* end = nullptr;
        const unsigned long value = std::strtoul(text, &end, 10);
        if (*end != '\0' || value == 0 || value > MAX_CONCURRENCY || text[0] == '-') {
            log::error("SLUICE_WORKER_CONCURRENCY must be an integer in 1..{}, got '{}'",
                       MAX_CONCURRENCY, text);
            return 2;
        }
        config.concurrency = static_cast<std::uint32_t>(value);
    }

    // Block the signals before any thread starts so every thread inherits the mask and only
    // sigwait below receives them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    worker::Worker worker(config);
    worker::tasks::register_all(worker);
    try {
        worker.start();
    } catch (const std::exception& e) {
        log::error("cannot start (endpoint {}): {}", config.broker_endpoint, e.what());
        return 2;
    }

    int signal = 0;
    sigwait(&signals, &signal);
    log::info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
    if (!worker.stop()) {
        // A handler ignored its stop token; its thread cannot be joined.
        log::error("exiting with handlers still running");
        std::_Exit(1);
    }
    return 0;
}
