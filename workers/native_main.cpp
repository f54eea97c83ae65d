// sluice-worker-native: serves the native tasks (echo, sleep) to a Sluice broker.
// Reads its config from the environment, runs until SIGINT or SIGTERM, then stops gracefully.
//
//   SLUICE_BROKER_WORKER_ENDPOINT  broker backend endpoint(s), comma-separated (default tcp://127.0.0.1:5556)
//   SLUICE_WORKER_CONCURRENCY      jobs run at once, 1..1024 (default 4)
//   SLUICE_WORKER_NAME             name sent in READY        (default <hostname>-<pid>)
//   SLUICE_LOG_LEVEL               debug|info|warn|error     (default info)
//   SLUICE_CURVE_SECRET_KEY_FILE   this worker's CURVE secret key (README.md, Security)
//   SLUICE_BROKER_PUBLIC_KEY_FILE  the broker's CURVE public key; both or neither
#include "curve.hpp"
#include "env.hpp"
#include "log.hpp"
#include "native_tasks.hpp"
#include "runtime.hpp"
#include "signals.hpp"

#include <cstdlib>
#include <exception>
#include <string>

namespace {

// Upper bound on SLUICE_WORKER_CONCURRENCY: each slot is an OS thread.
constexpr long long MAX_CONCURRENCY = 1024;

}  // namespace

int main() {
    using namespace sluice;
    log::init("worker-native", log::parse_level(env_string("SLUICE_LOG_LEVEL", "info")));

    worker::WorkerConfig config;
    config.broker_endpoints = curve::env_endpoints("SLUICE_BROKER_WORKER_ENDPOINT", config.broker_endpoints.front());
    config.curve_keys = curve::env_client_keys("SLUICE_BROKER_WORKER_ENDPOINT", config.broker_endpoints);
    config.name = env_string("SLUICE_WORKER_NAME", "");
    config.concurrency =
        static_cast<std::uint32_t>(env_int("SLUICE_WORKER_CONCURRENCY", 1, MAX_CONCURRENCY, config.concurrency));
    config.max_input_bytes = env_bytes("SLUICE_MAX_INPUT_BYTES", config.max_input_bytes);

    // Blocked before any thread starts, so only sigwait below receives them.
    const sigset_t signals = block_stop_signals();

    worker::Worker worker(config);
    worker::tasks::register_all(worker);
    try {
        worker.start();
    } catch (const std::exception& e) {
        log::error("cannot start (endpoints {}): {}", fmt::join(config.broker_endpoints, ","), e.what());
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
