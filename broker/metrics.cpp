// See metrics.hpp. The text format is written by hand (no C++ Prometheus client is packaged for
// Debian 12); promtool checks it in tests/e2e/test_api_metrics.py.
#include "metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::broker {
namespace {

constexpr std::array<const char*, BrokerMetrics::EVENT_COUNT> EVENT_NAMES{
    "submitted", "started", "succeeded", "failed", "retried", "lost"};
constexpr std::array<const char*, BrokerMetrics::EVENT_COUNT> EVENT_HELP{
    "Jobs stored by a SUBMIT", "Attempts handed to a worker", "Jobs that ended with a result",
    "Jobs that ended failed (into the dead set)", "Attempts that failed or were lost, their job queued again",
    "Attempts whose worker died or whose lease ran out"};

}  // namespace

void BrokerMetrics::count(const std::string& type, Event event, std::uint64_t n) {
    auto it = by_type_.find(type);
    if (it == by_type_.end()) it = by_type_.emplace(type, std::array<std::uint64_t, EVENT_COUNT>{}).first;
    it->second[event] += n;
}

void BrokerMetrics::script_took(std::string_view script, Clock::duration elapsed) {
    auto it = scripts_.find(script);
    if (it == scripts_.end()) it = scripts_.emplace(std::string(script), Latency{}).first;
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const auto bucket = std::lower_bound(BUCKETS.begin(), BUCKETS.end(), seconds);
    if (bucket != BUCKETS.end()) ++it->second.buckets[static_cast<std::size_t>(bucket - BUCKETS.begin())];
    ++it->second.count;
    it->second.sum += seconds;
}

std::string BrokerMetrics::render(const Now& now) const {
    std::string out;
    for (std::size_t e = 0; e < EVENT_COUNT; ++e) {
        out += fmt::format("# HELP sluice_broker_jobs_{0}_total {1}, by type.\n# TYPE sluice_broker_jobs_{0}_total counter\n",
                           EVENT_NAMES[e], EVENT_HELP[e]);
        for (const auto& [type, counts] : by_type_)
            out += fmt::format("sluice_broker_jobs_{}_total{{type=\"{}\"}} {}\n", EVENT_NAMES[e], type, counts[e]);
    }
    out += "# HELP sluice_broker_queued_jobs Jobs waiting in their queue, by type.\n"
           "# TYPE sluice_broker_queued_jobs gauge\n";
    for (const auto& [type, n] : now.queued) out += fmt::format("sluice_broker_queued_jobs{{type=\"{}\"}} {}\n", type, n);
    out += "# HELP sluice_broker_running_jobs Jobs handed to a worker and not ended, by type.\n"
           "# TYPE sluice_broker_running_jobs gauge\n";
    for (const auto& [type, n] : now.running) out += fmt::format("sluice_broker_running_jobs{{type=\"{}\"}} {}\n", type, n);
    out += fmt::format(
        "# HELP sluice_broker_delayed_retries Jobs waiting out their retry backoff.\n"
        "# TYPE sluice_broker_delayed_retries gauge\nsluice_broker_delayed_retries {}\n"
        "# HELP sluice_broker_workers Workers connected to the broker.\n"
        "# TYPE sluice_broker_workers gauge\nsluice_broker_workers {}\n",
        now.delayed, now.workers);
    out += "# HELP sluice_broker_redis_script_seconds Time of a Redis script call, reply included, by script.\n"
           "# TYPE sluice_broker_redis_script_seconds histogram\n";
    for (const auto& [script, latency] : scripts_) {
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < BUCKETS.size(); ++b) {
            cumulative += latency.buckets[b];
            out += fmt::format("sluice_broker_redis_script_seconds_bucket{{script=\"{}\",le=\"{}\"}} {}\n", script,
                               BUCKETS[b], cumulative);
        }
        out += fmt::format("sluice_broker_redis_script_seconds_bucket{{script=\"{0}\",le=\"+Inf\"}} {1}\n"
                           "sluice_broker_redis_script_seconds_sum{{script=\"{0}\"}} {2}\n"
                           "sluice_broker_redis_script_seconds_count{{script=\"{0}\"}} {1}\n",
                           script, latency.count, latency.sum);
    }
    return out;
}

}  // namespace sluice::broker
