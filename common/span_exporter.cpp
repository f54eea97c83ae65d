// See span_exporter.hpp. The JSON follows the OTLP/HTTP JSON encoding: lowerCamelCase field
// names, ids as hex strings (not base64), 64-bit integers as decimal strings, enums as numbers.
#include "span_exporter.hpp"

#include "env.hpp"
#include "log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>

namespace sluice::trace {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using nlohmann::json;

constexpr std::string_view SCHEME = "http://";
constexpr std::string_view TRACES_PATH = "/v1/traces";
// A collector's answer is a small protobuf or JSON object; nothing in it is read but the status.
constexpr std::size_t MAX_RESPONSE_BYTES = 64 * 1024;
// A collector that keeps refusing costs one log line a minute, not one a batch.
constexpr auto FAILURE_LOG_PERIOD = std::chrono::minutes(1);

struct Endpoint {
    std::string host, port, target;
};

std::optional<Endpoint> parse_endpoint(std::string_view endpoint, std::string* problem) {
    auto fail = [&](std::string why) {
        if (problem != nullptr) *problem = std::move(why);
        return std::nullopt;
    };
    if (!endpoint.starts_with(SCHEME)) return fail("must start with http:// (TLS is the collector's to add)");
    std::string_view rest = endpoint.substr(SCHEME.size());
    const std::size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
    while (path.ends_with('/')) path.pop_back();
    Endpoint out;
    out.port = "80";
    const std::size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
        const std::string_view port = authority.substr(colon + 1);
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
            return fail("has a bad port");
        out.port = std::string(port);
        authority = authority.substr(0, colon);
    }
    if (authority.size() > 2 && authority.front() == '[' && authority.back() == ']')
        authority = authority.substr(1, authority.size() - 2);
    if (authority.empty()) return fail("has no host");
    const bool visible = std::all_of(path.begin(), path.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (!visible || path.find_first_of("?#") != std::string::npos) return fail("has a path that is not plain");
    out.host = std::string(authority);
    out.target = path + std::string(TRACES_PATH);
    return out;
}

json any_value(const std::string& value) { return {{"stringValue", value}}; }

json attribute_list(const Span& span) {
    json out = json::array();
    for (const auto& [key, value] : span.attributes) out.push_back({{"key", key}, {"value", any_value(value)}});
    for (const auto& [key, value] : span.int_attributes)
        out.push_back({{"key", key}, {"value", {{"intValue", std::to_string(value)}}}});
    return out;
}

// One POST of a body to the endpoint, as a chain of completion handlers on the io_context that
// post() runs: resolve, connect, write, read. Plain callbacks rather than coroutines, so it
// builds with every compiler the project uses (Boost 1.74's Asio sees no coroutines in clang).
// `error` says what failed; `status` is the collector's HTTP status once it answered.
struct Exchange {
    Exchange(asio::io_context& ioc, const Endpoint& endpoint, std::string body, std::chrono::milliseconds timeout)
        : resolver(ioc), stream(ioc), timeout(timeout) {
        request = {http::verb::post, endpoint.target, 11};
        request.set(http::field::host, endpoint.host);
        request.set(http::field::content_type, "application/json");
        request.body() = std::move(body);
        request.prepare_payload();
        parser.body_limit(MAX_RESPONSE_BYTES);
    }

    void start(const Endpoint& endpoint) {
        resolver.async_resolve(endpoint.host, endpoint.port, [this](boost::system::error_code ec, auto addresses) {
            if (ec) return fail("resolve", ec);
            stream.expires_after(timeout);
            stream.async_connect(addresses, [this](boost::system::error_code ec, const auto&) {
                if (ec) return fail("connect", ec);
                http::async_write(stream, request, [this](boost::system::error_code ec, std::size_t) {
                    if (ec) return fail("write", ec);
                    http::async_read(stream, buffer, parser, [this](boost::system::error_code ec, std::size_t) {
                        if (ec) return fail("read", ec);
                        status = parser.get().result_int();
                        boost::system::error_code ignored;
                        stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
                    });
                });
            });
        });
    }

    void fail(const char* step, boost::system::error_code ec) { error = std::string(step) + ": " + ec.message(); }

    asio::ip::tcp::resolver resolver;
    boost::beast::tcp_stream stream;
    std::chrono::milliseconds timeout;
    http::request<http::string_body> request;
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    std::string error;
    unsigned status = 0;
};

}  // namespace

std::int64_t unix_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::optional<ExporterConfig> exporter_from_env(std::string service_name) {
    constexpr const char* NAME = "SLUICE_OTLP_ENDPOINT";
    std::string endpoint = env_string(NAME, "");
    if (endpoint.empty()) return std::nullopt;
    if (auto problem = endpoint_problem(endpoint)) env_fail(NAME, *problem);
    ExporterConfig config;
    config.endpoint = std::move(endpoint);
    config.service_name = std::move(service_name);
    return config;
}

std::optional<std::string> endpoint_problem(std::string_view endpoint) {
    std::string problem;
    if (parse_endpoint(endpoint, &problem)) return std::nullopt;
    return problem;
}

std::string otlp_json(std::string_view service_name, const std::vector<Span>& spans) {
    json list = json::array();
    for (const Span& span : spans) {
        json s = {{"traceId", span.trace_id},
                  {"spanId", span.span_id},
                  {"name", span.name},
                  {"kind", static_cast<int>(span.kind)},
                  {"startTimeUnixNano", std::to_string(span.start_ns)},
                  {"endTimeUnixNano", std::to_string(span.end_ns)},
                  {"attributes", attribute_list(span)}};
        if (!span.parent_span_id.empty()) s["parentSpanId"] = span.parent_span_id;
        if (span.error) s["status"] = {{"code", 2}, {"message", span.status_message}};
        list.push_back(std::move(s));
    }
    json resource = {{"attributes", json::array({{{"key", "service.name"}, {"value", any_value(std::string(service_name))}}})}};
    json scope = {{"scope", {{"name", "sluice"}}}, {"spans", std::move(list)}};
    json body = {{"resourceSpans", json::array({{{"resource", std::move(resource)},
                                                   {"scopeSpans", json::array({std::move(scope)})}}})}};
    // Span names and attributes can hold a client's bytes: never let them stop an export.
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

SpanExporter::SpanExporter(ExporterConfig config) : config_(std::move(config)) {
    const auto endpoint = parse_endpoint(config_.endpoint, nullptr);
    host_ = endpoint->host;
    port_ = endpoint->port;
    target_ = endpoint->target;
    thread_ = std::thread([this] { run(); });
}

SpanExporter::~SpanExporter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void SpanExporter::add(Span span) {
    bool full_batch = false;
    {
        std::lock_guard lock(mutex_);
        if (queued_.size() >= config_.max_queued) {
            ++dropped_;
            return;
        }
        queued_.push_back(std::move(span));
        full_batch = queued_.size() == config_.max_batch;
    }
    if (full_batch) wake_.notify_one();
}

void SpanExporter::run() {
    std::optional<std::chrono::steady_clock::time_point> last_failure_log;
    std::uint64_t failed_spans = 0;  // not sent since the last line that said so
    std::unique_lock lock(mutex_);
    while (true) {
        wake_.wait_for(lock, config_.interval, [this] { return stopping_ || queued_.size() >= config_.max_batch; });
        if (queued_.empty()) {
            if (stopping_) return;
            continue;
        }
        const std::size_t n = std::min(queued_.size(), config_.max_batch);
        std::vector<Span> batch(std::make_move_iterator(queued_.begin()), std::make_move_iterator(queued_.begin() + n));
        queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(n));
        const std::uint64_t dropped = std::exchange(dropped_, 0);
        lock.unlock();
        if (dropped > 0)
            log::warn("tracing: dropped {} span(s): more than {} waited for the collector at {}", dropped,
                      config_.max_queued, config_.endpoint);
        const std::string error = post(batch);
        lock.lock();
        if (error.empty()) continue;
        failed_spans += batch.size();
        const auto now = std::chrono::steady_clock::now();
        if (!last_failure_log || now - *last_failure_log >= FAILURE_LOG_PERIOD || stopping_) {
            log::warn("tracing: {} span(s) not sent to {}: {}", failed_spans, config_.endpoint, error);
            last_failure_log = now;
            failed_spans = 0;
        }
        // Shutting down with the collector away: what waits goes with this process.
        if (stopping_) return;
    }
}

std::string SpanExporter::post(const std::vector<Span>& batch) {
    asio::io_context ioc;
    const Endpoint endpoint{host_, port_, target_};
    Exchange exchange(ioc, endpoint, otlp_json(config_.service_name, batch), config_.timeout);
    exchange.start(endpoint);
    ioc.run();
    if (!exchange.error.empty()) return exchange.error;
    if (exchange.status < 200 || exchange.status > 299)
        return "the collector answered HTTP " + std::to_string(exchange.status);
    return "";
}

}  // namespace sluice::trace
