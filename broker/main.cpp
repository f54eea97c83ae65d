// sluice-broker: reads BrokerConfig from the environment and runs until SIGINT/SIGTERM: a standby
// until it wins the lease, then the leader, then a standby again if it loses it.
#include "broker.hpp"
#include "curve.hpp"
#include "env.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "names.hpp"
#include "signals.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include <charconv>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

// The comma-separated job types of `name`, each checked as the broker checks a declared type.
std::vector<std::string> env_types(const char* name) {
    std::vector<std::string> types = sluice::env_list(name);
    for (const std::string& type : types)
        if (!sluice::valid_job_type(type))
            sluice::env_fail(name, "lists '" + type + "', not a job type (1-" + std::to_string(sluice::limits::MAX_TYPE_NAME) +
                                       " letters, digits, '_', '.', ':', '-')");
    return types;
}

// Bounds of SLUICE_BROKER_LEASE_MS: below half a second a slow Redis round trip could cost a
// healthy leader its lease; above a minute a failover waits that long.
constexpr long long MIN_LEASE_MS = 500;
constexpr long long MAX_LEASE_MS = 60000;

// The broker's id in the lease: `name` or, unset, the host name; 1-64 letters, digits, '_',
// '.', ':', '-' (it is logged and stored in Redis).
std::string env_broker_id(const char* name) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "broker");
    std::string id = sluice::env_string(name, host);
    const bool valid = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == ':' || c == '-';
    });
    if (!valid) sluice::env_fail(name, "must be 1-64 letters, digits, '_', '.', ':', '-' (got '" + id + "')");
    return id;
}

// Most jobs a tenant may take per turn of fair share: a tenant that joins waits for every other
// tenant's turn, so a larger weight would hold newcomers back for that many jobs.
constexpr long long MAX_TENANT_WEIGHT = 1000;

// The tenant weights of `name`: comma-separated `tenant=weight` items, each tenant once.
std::map<std::string, std::uint32_t> env_weights(const char* name) {
    std::map<std::string, std::uint32_t> weights;
    for (const std::string& item : sluice::env_list(name)) {
        const std::size_t equals = item.find('=');
        const std::string tenant = item.substr(0, equals);
        long long weight = 0;
        const char* digits = item.c_str() + (equals == std::string::npos ? item.size() : equals + 1);
        const auto [end, ec] = std::from_chars(digits, item.c_str() + item.size(), weight);
        if (!sluice::valid_tenant(tenant) || ec != std::errc() || end != item.c_str() + item.size() || weight < 1 ||
            weight > MAX_TENANT_WEIGHT)
            sluice::env_fail(name, "lists '" + item + "': each item must be tenant=weight, a tenant name (1-" +
                                       std::to_string(sluice::limits::MAX_TENANT_NAME) +
                                       " letters, digits, '_', '.', '-') and a weight in 1.." +
                                       std::to_string(MAX_TENANT_WEIGHT));
        if (!weights.emplace(tenant, static_cast<std::uint32_t>(weight)).second)
            sluice::env_fail(name, "lists tenant '" + tenant + "' twice");
    }
    return weights;
}

// CURVE from the environment (README.md, Security): with a secret key both sockets are CURVE
// servers and both allow-lists must be given; without one, both endpoints must stay on this host.
std::optional<sluice::broker::CurveServer> env_curve(const sluice::broker::BrokerConfig& config) {
    std::optional<std::string> secret = sluice::curve::env_key("SLUICE_CURVE_SECRET_KEY_FILE");
    std::optional<std::set<std::string>> api_keys = sluice::curve::env_allow_list("SLUICE_API_KEYS_FILE");
    std::optional<std::set<std::string>> worker_keys = sluice::curve::env_allow_list("SLUICE_WORKER_KEYS_FILE");
    if (!secret) {
        if (api_keys || worker_keys)
            sluice::env_fail(api_keys ? "SLUICE_API_KEYS_FILE" : "SLUICE_WORKER_KEYS_FILE",
                             "is set but SLUICE_CURVE_SECRET_KEY_FILE is not: without it no key would be checked");
        for (const auto& [name, endpoint] : {std::pair{"SLUICE_BROKER_API_ENDPOINT", config.frontend_endpoint},
                                             std::pair{"SLUICE_BROKER_WORKER_ENDPOINT", config.backend_endpoint}})
            if (!sluice::curve::local_endpoint(endpoint))
                sluice::env_fail("SLUICE_CURVE_SECRET_KEY_FILE",
                                 std::string("must be set: ") + name + " " + endpoint +
                                     " is reachable from other hosts, and without CURVE anyone who reaches it "
                                     "could pose as a part of Sluice (README.md, Security)");
        return std::nullopt;
    }
    if (!api_keys) sluice::env_fail("SLUICE_API_KEYS_FILE", "must be set with SLUICE_CURVE_SECRET_KEY_FILE");
    if (!worker_keys) sluice::env_fail("SLUICE_WORKER_KEYS_FILE", "must be set with SLUICE_CURVE_SECRET_KEY_FILE");
    return sluice::broker::CurveServer{std::move(*secret), std::move(*api_keys), std::move(*worker_keys)};
}

}  // namespace

int main() {
    using sluice::broker::BrokerConfig;
    using sluice::env_int;
    using sluice::env_string;
    sluice::log::init("broker", sluice::log::parse_level(env_string("SLUICE_LOG_LEVEL", "info")));

    BrokerConfig config;
    config.frontend_endpoint = env_string("SLUICE_BROKER_API_ENDPOINT", config.frontend_endpoint);
    config.backend_endpoint = env_string("SLUICE_BROKER_WORKER_ENDPOINT", config.backend_endpoint);
    config.broker_id = env_broker_id("SLUICE_BROKER_ID");
    config.lease_ttl = std::chrono::milliseconds(
        env_int("SLUICE_BROKER_LEASE_MS", MIN_LEASE_MS, MAX_LEASE_MS, config.lease_ttl.count()));
    config.redis_host = env_string("SLUICE_REDIS_HOST", config.redis_host);
    config.redis_port = static_cast<int>(env_int("SLUICE_REDIS_PORT", 1, 65535, config.redis_port));
    config.redis_login = sluice::redis_login_from_env();
    config.redis_sentinels = sluice::sentinel::config_from_env();
    config.redis_min_replicas = static_cast<int>(env_int("SLUICE_REDIS_MIN_REPLICAS", 0, 100, config.redis_min_replicas));
    config.redis_wait_timeout = sluice::env_ms("SLUICE_REDIS_WAIT_TIMEOUT_MS", std::chrono::milliseconds(1),
                                               std::chrono::milliseconds(60000), config.redis_wait_timeout);
    config.max_queue_depth = static_cast<std::size_t>(
        env_int("SLUICE_MAX_QUEUE_DEPTH", 1, 1'000'000'000, static_cast<long long>(config.max_queue_depth)));
    config.job_ttl_s = env_int("SLUICE_JOB_TTL_S", 1, 10LL * 365 * 24 * 3600, config.job_ttl_s);
    config.events_maxlen = env_int("SLUICE_EVENTS_MAXLEN", 1, 1'000'000'000, config.events_maxlen);
    config.max_redeliveries = env_int("SLUICE_MAX_REDELIVERIES", 0, 1000, config.max_redeliveries);
    config.budget_window_ms = env_int("SLUICE_BUDGET_WINDOW_MS", 100, 3600LL * 1000, config.budget_window_ms);
    config.max_rate_limited = env_int("SLUICE_MAX_RATE_LIMITED", 1, 1'000'000, config.max_rate_limited);
    config.retry_backoff_ms = env_int("SLUICE_RETRY_BACKOFF_MS", 0, 24LL * 3600 * 1000, config.retry_backoff_ms);
    config.max_input_bytes = sluice::env_bytes("SLUICE_MAX_INPUT_BYTES", config.max_input_bytes);
    config.max_result_bytes = sluice::env_bytes("SLUICE_MAX_RESULT_BYTES", config.max_result_bytes);
    config.max_event_bytes = sluice::env_bytes("SLUICE_MAX_EVENT_BYTES", config.max_event_bytes);
    config.known_types = env_types("SLUICE_KNOWN_TYPES");
    config.storage_full_percent =
        static_cast<int>(env_int("SLUICE_STORAGE_FULL_PERCENT", 10, 99, config.storage_full_percent));
    config.tenant_max_bytes = env_int("SLUICE_TENANT_MAX_BYTES", 1, 1LL << 50, config.tenant_max_bytes);
    config.tenant_max_queued = static_cast<std::size_t>(env_int("SLUICE_TENANT_MAX_QUEUED", 1, 1'000'000'000,
                                                                static_cast<long long>(config.max_queue_depth)));
    config.fair_share.weights = env_weights("SLUICE_TENANT_WEIGHTS");
    // Unset means no limit: the fallback 0 lies outside the range, so nothing else gives it.
    if (const long long most = env_int("SLUICE_TENANT_MAX_RUNNING", 1, 1'000'000'000, 0); most > 0)
        config.fair_share.tenant_max_running = static_cast<std::size_t>(most);
    config.curve = env_curve(config);
    config.tracing = sluice::trace::exporter_from_env("sluice-broker");

    // Signals arrive as a readable fd that the loop polls, so shutdown needs no async handler.
    const sigset_t signals = sluice::block_stop_signals();
    const int stop_fd = signalfd(-1, &signals, SFD_CLOEXEC);

    try {
        sluice::log::info("redis {}", config.redis_sentinels
                                          ? fmt::format("master '{}' from {} sentinel(s)", config.redis_sentinels->master_name,
                                                        config.redis_sentinels->sentinels.size())
                                          : fmt::format("{}:{}", config.redis_host, config.redis_port));
        if (config.redis_min_replicas > 0)
            sluice::log::info("a submit is answered 202 once {} replica(s) hold it (WAIT, {} ms at most)",
                              config.redis_min_replicas, config.redis_wait_timeout.count());
        if (config.curve)
            sluice::log::info("CURVE on: {} api key(s) and {} worker key(s) allowed", config.curve->api_keys.size(),
                              config.curve->worker_keys.size());
        else
            sluice::log::info("CURVE off: any process on this host can reach both sockets (README.md, Security)");
        if (config.tracing) sluice::log::info("tracing: spans go to {}", config.tracing->endpoint);
        // A broker that loses the lease starts over from nothing, as a standby: what it held in
        // memory may be stale, and Redis has what the new leader left.
        for (;;) {
            sluice::broker::Broker broker(config);
            if (broker.run(stop_fd) == sluice::broker::Broker::Exit::STOPPED) break;
            config = broker.config();
        }
    } catch (const std::exception& e) {
        sluice::log::error("fatal: {}", e.what());
        return 1;
    }
    return 0;
}
