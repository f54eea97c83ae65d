// See metrics.hpp. The text format is written by hand (no C++ Prometheus client is packaged for
// Debian 12); promtool checks it in tests/e2e/test_api_metrics.py.
#include "metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::broker {
namespace {

constexpr std::array<const char*, BrokerMetrics::EVENT_COUNT> EVENT_NAMES{
    "submitted", "started", "succeeded", "failed", "retried", "lost", "joined"};
constexpr std::array<const char*, BrokerMetrics::EVENT_COUNT> EVENT_HELP{
    "Jobs stored by a SUBMIT", "Attempts handed to a worker", "Jobs that ended with a result",
    "Jobs that ended failed (into the dead set)", "Attempts that failed or were lost, their job queued again",
    "Attempts whose worker died or whose lease ran out",
    "Jobs stored by a SUBMIT that joined an identical queued or running job (options.dedupe), run by it"};

// Appends histogram `name`'s series for one label value: cumulative buckets, +Inf, sum, count.
template <std::size_t Bounds>
void render_histogram(std::string& out, std::string_view name, std::string_view label, std::string_view value,
                      const std::array<double, Bounds>& bounds, const BrokerMetrics::Histogram<Bounds>& h) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < Bounds; ++b) {
        cumulative += h.buckets[b];
        out += fmt::format("{}_bucket{{{}=\"{}\",le=\"{}\"}} {}\n", name, label, value, bounds[b], cumulative);
    }
    out += fmt::format("{0}_bucket{{{1}=\"{2}\",le=\"+Inf\"}} {3}\n{0}_sum{{{1}=\"{2}\"}} {4}\n"
                       "{0}_count{{{1}=\"{2}\"}} {3}\n",
                       name, label, value, h.count, h.sum);
}

}  // namespace

template <std::size_t Bounds>
void BrokerMetrics::Histogram<Bounds>::observe(const std::array<double, Bounds>& bounds, double seconds) {
    const auto bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds);
    if (bucket != bounds.end()) ++buckets[static_cast<std::size_t>(bucket - bounds.begin())];
    ++count;
    sum += seconds;
}

void BrokerMetrics::count(const std::string& type, Event event, std::uint64_t n) {
    auto it = by_type_.find(type);
    if (it == by_type_.end()) it = by_type_.emplace(type, std::array<std::uint64_t, EVENT_COUNT>{}).first;
    it->second[event] += n;
}

void BrokerMetrics::script_took(std::string_view script, Clock::duration elapsed) {
    auto it = scripts_.find(script);
    if (it == scripts_.end()) it = scripts_.emplace(std::string(script), Histogram<BUCKETS.size()>{}).first;
    it->second.observe(BUCKETS, std::chrono::duration<double>(elapsed).count());
}

void BrokerMetrics::queue_waited(const std::string& type, std::int64_t waited_ms) {
    auto it = waits_.find(type);
    if (it == waits_.end()) it = waits_.emplace(type, Histogram<WAIT_BUCKETS.size()>{}).first;
    // A clock step can make a wait look negative: it counts as none.
    it->second.observe(WAIT_BUCKETS, static_cast<double>(std::max<std::int64_t>(waited_ms, 0)) / 1000.0);
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
    for (const auto& [script, latency] : scripts_)
        render_histogram(out, "sluice_broker_redis_script_seconds", "script", script, BUCKETS, latency);
    out += "# HELP sluice_broker_queue_wait_seconds Time from a job's queueing (or requeueing, or its due time) "
           "to its attempt's start, by type.\n# TYPE sluice_broker_queue_wait_seconds histogram\n";
    for (const auto& [type, wait] : waits_)
        render_histogram(out, "sluice_broker_queue_wait_seconds", "type", type, WAIT_BUCKETS, wait);
    return out;
}

}  // namespace sluice::broker
