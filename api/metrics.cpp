// See metrics.hpp. The text format is written here by hand: no C++ Prometheus client is
// packaged for Debian 12, and the format is a few lines (promtool checks the output in
// tests/e2e/test_api_metrics.py).
#include "metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::api {
namespace {

constexpr auto RELAXED = std::memory_order_relaxed;

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string escaped(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

}  // namespace

ApiMetrics::ApiMetrics(std::span<const RouteLabel> routes)
    : labels_(routes.begin(), routes.end()), routes_(routes.size() + 1) {
    labels_.push_back({"", "unmatched"});
}

void ApiMetrics::record(std::size_t route, int status, std::chrono::steady_clock::duration elapsed) {
    PerRoute& r = routes_[std::min(route, routes_.size() - 1)];
    const auto known = std::find(STATUSES.begin(), STATUSES.end(), status);
    r.by_status[static_cast<std::size_t>(known - STATUSES.begin())].fetch_add(1, RELAXED);
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const auto bucket = std::lower_bound(BUCKETS.begin(), BUCKETS.end(), seconds);
    if (bucket != BUCKETS.end()) r.buckets[static_cast<std::size_t>(bucket - BUCKETS.begin())].fetch_add(1, RELAXED);
    r.count.fetch_add(1, RELAXED);
    r.sum_us.fetch_add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()),
                       RELAXED);
}

std::string ApiMetrics::render(std::string_view extra) const {
    std::string out;
    auto labels = [this](std::size_t i) {
        return fmt::format("method=\"{}\",route=\"{}\"", escaped(labels_[i].method), escaped(labels_[i].pattern));
    };
    out += "# HELP sluice_api_requests_total HTTP requests answered, by route, method and status.\n"
           "# TYPE sluice_api_requests_total counter\n";
    for (std::size_t i = 0; i < routes_.size(); ++i)
        for (std::size_t s = 0; s < routes_[i].by_status.size(); ++s) {
            const std::uint64_t n = routes_[i].by_status[s].load(RELAXED);
            if (n == 0) continue;
            const std::string status = s < STATUSES.size() ? std::to_string(STATUSES[s]) : "other";
            out += fmt::format("sluice_api_requests_total{{{},status=\"{}\"}} {}\n", labels(i), status, n);
        }
    out += "# HELP sluice_api_request_duration_seconds Time from a request's arrival to its answer (or "
           "the start of its stream), by route.\n"
           "# TYPE sluice_api_request_duration_seconds histogram\n";
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        const PerRoute& r = routes_[i];
        const std::uint64_t count = r.count.load(RELAXED);
        if (count == 0) continue;
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < BUCKETS.size(); ++b) {
            cumulative += r.buckets[b].load(RELAXED);
            out += fmt::format("sluice_api_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels(i), BUCKETS[b],
                               cumulative);
        }
        // Read after the buckets: +Inf is never below them, whatever was recorded meanwhile.
        out += fmt::format("sluice_api_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels(i),
                           std::max(count, cumulative));
        out += fmt::format("sluice_api_request_duration_seconds_sum{{{}}} {}\n", labels(i),
                           static_cast<double>(r.sum_us.load(RELAXED)) / 1e6);
        out += fmt::format("sluice_api_request_duration_seconds_count{{{}}} {}\n", labels(i), std::max(count, cumulative));
    }
    out += fmt::format(
        "# HELP sluice_api_open_streams Event streams open now, by kind (sse, websocket).\n"
        "# TYPE sluice_api_open_streams gauge\n"
        "sluice_api_open_streams{{kind=\"sse\"}} {}\n"
        "sluice_api_open_streams{{kind=\"websocket\"}} {}\n",
        open_sse.load(RELAXED), open_websockets.load(RELAXED));
    out += extra;
    return out;
}

}  // namespace sluice::api
