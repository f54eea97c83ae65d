// Spans of the api and the broker, sent to an OpenTelemetry collector over OTLP/HTTP in its JSON
// encoding (POST {endpoint}/v1/traces) when SLUICE_OTLP_ENDPOINT is set. Written by hand and
// kept to this one module: opentelemetry-cpp is not packaged for Debian 12, and these two
// components make one or two spans a job. A thread of its own batches and posts them, so a slow
// or absent collector never holds up a request or the broker loop: past MAX_QUEUED waiting
// spans new ones are dropped and counted in a log line. Plain http:// only, as to a collector
// agent on the host; a collector forwards over TLS.
// add() is thread-safe; the rest belongs to the owner.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::trace {

// One finished span, in OTLP's terms.
struct Span {
    enum class Kind { INTERNAL = 1, SERVER = 2, CLIENT = 3, PRODUCER = 4, CONSUMER = 5 };

    std::string trace_id;        // 32 hex digits
    std::string span_id;         // 16 hex digits
    std::string parent_span_id;  // empty for a root span
    std::string name;
    Kind kind = Kind::INTERNAL;
    std::int64_t start_ns = 0;  // Unix time in nanoseconds
    std::int64_t end_ns = 0;
    std::vector<std::pair<std::string, std::string>> attributes;
    std::vector<std::pair<std::string, std::int64_t>> int_attributes;
    bool error = false;  // the span's status: ERROR, with `status_message`; otherwise UNSET
    std::string status_message;
};

// Unix time now in nanoseconds, for Span::start_ns and end_ns.
std::int64_t unix_now_ns();

// Where and how spans go.
struct ExporterConfig {
    std::string endpoint;      // http://host[:port][/base path]; spans go to that + /v1/traces
    std::string service_name;  // the resource's service.name: sluice-api, sluice-broker
    // A collector answers in milliseconds; one that does not is given up on for this batch.
    std::chrono::milliseconds timeout{2000};
    // A batch goes when this many spans wait, or once a second.
    std::size_t max_batch = 512;
    std::chrono::milliseconds interval{1000};
    // Spans held while the collector is slow or away (a few MB at most); more are dropped.
    std::size_t max_queued = 8192;
};

// The exporter config from SLUICE_OTLP_ENDPOINT for `service_name`; nullopt when it is unset or
// empty (no spans). Exits through env_fail() when it is not a usable endpoint.
std::optional<ExporterConfig> exporter_from_env(std::string service_name);

// Why `endpoint` cannot be used (not http://host[:port][/path], a bad port), or nullopt.
std::optional<std::string> endpoint_problem(std::string_view endpoint);

// The OTLP JSON body (an ExportTraceServiceRequest) of `spans` from `service_name`.
std::string otlp_json(std::string_view service_name, const std::vector<Span>& spans);

class SpanExporter {
public:
    // Starts the sending thread. Requires endpoint_problem(config.endpoint) == nullopt.
    explicit SpanExporter(ExporterConfig config);
    // Sends what waits (each post bounded by the timeout), then stops the thread.
    ~SpanExporter();
    SpanExporter(const SpanExporter&) = delete;
    SpanExporter& operator=(const SpanExporter&) = delete;

    // Queues a finished span for the next batch. Thread-safe; never blocks on the network.
    void add(Span span);

private:
    void run();
    // Posts one batch; returns an error text, or empty when the collector took it.
    std::string post(const std::vector<Span>& batch);

    ExporterConfig config_;
    std::string host_, port_, target_;  // from the endpoint
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Span> queued_;     // guarded by mutex_
    std::uint64_t dropped_ = 0;   // guarded by mutex_: spans dropped since the last log line
    bool stopping_ = false;       // guarded by mutex_
    std::thread thread_;          // last: started once the rest is ready
};

}  // namespace sluice::trace
