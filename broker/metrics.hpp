// What the broker counts for GET /metrics: jobs by type and what became of them, queue depth,
// running jobs and workers, how long jobs wait in their queue before a worker gets them and how
// long each Redis script takes. Once a second the broker
// renders them in the Prometheus text format into keys::BROKER_METRICS (a short expiry, like
// the worker report), and every api appends that text to its own metrics: one scrape of any
// api shows the broker too, and the broker opens no port of its own.
// Labels are job types (only types a worker declared or the config named reach here) and
// script names, never job ids. Loop thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::broker {

class BrokerMetrics {
public:
    using Clock = std::chrono::steady_clock;

    // What happens to jobs, counted by type.
    enum Event : std::size_t {
        SUBMITTED,  // stored by a SUBMIT
        STARTED,    // an attempt handed to a worker
        SUCCEEDED,  // a result stored
        FAILED,     // ended failed (the dead set)
        RETRIED,    // an attempt failed or was lost, and the job goes back to its queue
        LOST,       // an attempt ended because its worker died or its lease ran out
        JOINED,     // stored by a SUBMIT that joined an identical job (options.dedupe): runs nothing
        EVENT_COUNT,
    };

    void count(const std::string& type, Event event, std::uint64_t n = 1);
    // A call of the script named `script` (see script_name()) took `elapsed`, reply included.
    void script_took(std::string_view script, Clock::duration elapsed);
    // An attempt of a `type` job started `waited_ms` after it was queued (or, for a retry,
    // queued again; for a scheduled job, due).
    void queue_waited(const std::string& type, std::int64_t waited_ms);

    // What the broker holds now, given to render().
    struct Now {
        std::map<std::string, std::size_t> queued;   // by type, known types included at 0
        std::map<std::string, std::size_t> running;  // by type, known types included at 0
        std::size_t delayed = 0;                     // retries waiting out their backoff
        std::size_t workers = 0;
    };
    // Every figure in the Prometheus text format.
    std::string render(const Now& now) const;

    // Bucket bounds (seconds) of the script latency histogram: a SUBMIT batch takes well under
    // a millisecond; a LOAD_QUEUE of a long queue or a Redis busy with a save much longer.
    static constexpr std::array<double, 10> BUCKETS{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1};
    // Bucket bounds (seconds) of the queue wait histogram: from an idle worker picking a job
    // up at once (a few ms) to a backlog of many minutes.
    static constexpr std::array<double, 12> WAIT_BUCKETS{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600};

    // One histogram's observations: `Bounds` bucket bounds in seconds.
    template <std::size_t Bounds>
    struct Histogram {
        std::array<std::uint64_t, Bounds> buckets{};  // not cumulative
        std::uint64_t count = 0;
        double sum = 0;
        void observe(const std::array<double, Bounds>& bounds, double seconds);
    };

private:
    std::map<std::string, std::array<std::uint64_t, EVENT_COUNT>> by_type_;
    std::map<std::string, Histogram<BUCKETS.size()>, std::less<>> scripts_;
    std::map<std::string, Histogram<WAIT_BUCKETS.size()>, std::less<>> waits_;
};

}  // namespace sluice::broker
