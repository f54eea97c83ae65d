// The api's Prometheus metrics, served at GET /metrics in the text exposition format (version
// 0.0.4): requests by route, method and status with a latency histogram per route, and the
// event streams (SSE) and WebSockets open now. Labels are route patterns ("/v1/jobs/{id}"),
// never paths, so no job id becomes a label and the number of series is fixed.
// Thread-safe: every shard records into the one ApiMetrics of the process with relaxed atomic
// increments; a scrape reads them as they are (each figure on its own is exact).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::api {

class ApiMetrics {
public:
    // One labelled route: its method and pattern. Requests that match no route count under
    // the method "" and the pattern "unmatched".
    struct RouteLabel {
        std::string_view method;
        std::string_view pattern;
    };

    // Counts for `routes` plus the unmatched ones.
    explicit ApiMetrics(std::span<const RouteLabel> routes);

    // A request to route `route` (an index into the routes given at construction; their count,
    // or more, for no route) answered `status` after `elapsed`.
    void record(std::size_t route, int status, std::chrono::steady_clock::duration elapsed);

    // Counts an open connection of a kind for as long as it lives.
    class Open {
    public:
        explicit Open(std::atomic<std::int64_t>& gauge) : gauge_(&gauge) { gauge_->fetch_add(1, std::memory_order_relaxed); }
        Open(const Open&) = delete;
        Open& operator=(const Open&) = delete;
        ~Open() { gauge_->fetch_sub(1, std::memory_order_relaxed); }

    private:
        std::atomic<std::int64_t>* gauge_;
    };
    std::atomic<std::int64_t> open_sse{0};
    std::atomic<std::int64_t> open_websockets{0};

    // Every figure in the Prometheus text format; `extra` (already in that format) is appended.
    std::string render(std::string_view extra = {}) const;

    // The statuses counted one by one; any other counts as "other".
    static constexpr std::array<int, 22> STATUSES{101, 200, 201, 202, 204, 304, 400, 401, 403, 404, 405,
                                                  408, 409, 413, 415, 422, 429, 431, 500, 503, 504, 507};
    // Histogram bucket bounds in seconds: from a cached read (well under a millisecond) to a
    // long-poll (GET /result?wait= holds a request up to 60 s).
    static constexpr std::array<double, 14> BUCKETS{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1, 0.25, 0.5, 1, 2.5, 10, 60};

private:
    struct PerRoute {
        std::array<std::atomic<std::uint64_t>, STATUSES.size() + 1> by_status{};  // last: other
        std::array<std::atomic<std::uint64_t>, BUCKETS.size()> buckets{};  // not cumulative
        std::atomic<std::uint64_t> count{0};
        std::atomic<std::uint64_t> sum_us{0};
    };
    std::vector<RouteLabel> labels_;
    std::vector<PerRoute> routes_;
};

}  // namespace sluice::api
