// sluice-broker: reads BrokerConfig from the environment, binds, and runs until SIGINT/SIGTERM.
#include "broker.hpp"
#include "log.hpp"
#include "names.hpp"

#include <sys/signalfd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::string env_or(const char* name, std::string fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : fallback;
}

long long env_int(const char* name, long long fallback) {
    const std::string value = env_or(name, "");
    if (value.empty()) return fallback;
    try {
        return std::stoll(value);
    } catch (const std::exception&) {
        sluice::log::error("{}={} is not a number", name, value);
        std::exit(2);
    }
}

// The comma-separated job types of `name`, each checked as the broker checks a declared type.
std::vector<std::string> env_types(const char* name) {
    std::vector<std::string> types;
    const std::string value = env_or(name, "");
    for (std::size_t start = 0; !value.empty();) {
        const std::size_t comma = value.find(',', start);
        std::string type = value.substr(start, comma == std::string::npos ? comma : comma - start);
        if (!sluice::broker::valid_job_type(type)) {
            sluice::log::error("{}={}: '{}' is not a valid job type (1-{} letters, digits, '_', '.', ':', '-')", name,
                               value, type, sluice::broker::MAX_NAME);
            std::exit(2);
        }
        types.push_back(std::move(type));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return types;
}

}  // namespace

int main() {
    using sluice::broker::BrokerConfig;
    sluice::log::init("broker", sluice::log::parse_level(env_or("SLUICE_LOG_LEVEL", "info")));

    BrokerConfig config;
    config.frontend_endpoint = env_or("SLUICE_BROKER_API_ENDPOINT", config.frontend_endpoint);
    config.backend_endpoint = env_or("SLUICE_BROKER_WORKER_ENDPOINT", config.backend_endpoint);
    config.redis_host = env_or("SLUICE_REDIS_HOST", config.redis_host);
    config.redis_port = static_cast<int>(env_int("SLUICE_REDIS_PORT", config.redis_port));
    config.max_queue_depth = static_cast<std::size_t>(env_int("SLUICE_MAX_QUEUE_DEPTH", static_cast<long long>(config.max_queue_depth)));
    config.job_ttl_s = env_int("SLUICE_JOB_TTL_S", config.job_ttl_s);
    config.events_maxlen = env_int("SLUICE_EVENTS_MAXLEN", config.events_maxlen);
    config.retry_backoff_ms = env_int("SLUICE_RETRY_BACKOFF_MS", config.retry_backoff_ms);
    config.known_types = env_types("SLUICE_KNOWN_TYPES");

    // Signals arrive as a readable fd that the loop polls, so shutdown needs no async handler.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    const int stop_fd = signalfd(-1, &signals, SFD_CLOEXEC);

    try {
        sluice::broker::Broker broker(config);
        std::printf("sluice-broker frontend %s backend %s\n", broker.frontend_endpoint().c_str(),
                    broker.backend_endpoint().c_str());
        std::fflush(stdout);
        sluice::log::info("api endpoint {}, worker endpoint {}, redis {}:{}", broker.frontend_endpoint(),
                          broker.backend_endpoint(), config.redis_host, config.redis_port);
        broker.run(stop_fd);
    } catch (const std::exception& e) {
        sluice::log::error("fatal: {}", e.what());
        return 1;
    }
    return 0;
}
