// HTTP sessions, request handlers and the per-thread shard of sluice-api (see server.hpp).
// The pure parts (validation, formatting, routing) live in request.cpp; this file does the I/O.
#include "server.hpp"

#include "broker_link.hpp"
#include "log.hpp"
#include "loop.hpp"
#include "redis_client.hpp"
#include "request.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <sys/socket.h>

#include <array>
#include <exception>
#include <iterator>
#include <unordered_set>

namespace sluice::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Request = http::request<http::string_body>;

// Redis commands answer in well under a millisecond; past this Redis counts as unavailable.
constexpr auto REDIS_TIMEOUT = std::chrono::milliseconds(2000);
// /readyz gives each dependency this long to answer its PING.
constexpr auto READY_TIMEOUT = std::chrono::milliseconds(1000);
// Long polls and SSE streams re-read Redis at least this often. Notices are missed only while
// the subscriber reconnects, and its resubscribe wakes everybody, so this is a safety net; at
// 10,000 open streams a 1 s period cost 20,000 Redis reads a second.
constexpr auto RECHECK_INTERVAL = std::chrono::seconds(10);
// How often a shard looks for event streams whose re-check or keep-alive is due: their
// deadlines are kept to this precision.
constexpr auto TICK_INTERVAL = std::chrono::seconds(1);
// Events read (and written) per XRANGE batch: the most one SSE client holds in api memory.
constexpr int EVENT_BATCH = 100;
// The first read of a request: Beast reads at least this much at a time anyway.
constexpr std::size_t FIRST_READ_BYTES = 512;
// Connections past the limit get a 503; this many may be in the middle of getting it per
// shard, beyond that they are closed without an answer.
constexpr int MAX_REJECTING = 64;
constexpr auto REJECT_TIMEOUT = std::chrono::milliseconds(1000);
// Lingering close after an error answer: how long and how much we keep reading and discarding.
constexpr auto LINGER_TIMEOUT = std::chrono::milliseconds(2000);
constexpr std::size_t LINGER_MAX_BYTES = 16 * 1024 * 1024;
// Highest Last-Event-ID accepted (keeps seq + 1 from overflowing).
constexpr std::uint64_t MAX_EVENT_ID = std::uint64_t{1} << 62;
constexpr const char* NOTIFY_CHANNEL = "sluice:notify";

// A result whose body is JSON text already.
HttpResult text_result(int status, std::string body) {
    HttpResult r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

HttpResult json_result(int status, const json& body) { return text_result(status, dump_json(body)); }

HttpResult redis_unavailable() {
    return error_result({503, "redis_unavailable", "job store (Redis) is unavailable"});
}

HttpResult job_not_found(std::string_view id) {
    return error_result({404, "job_not_found", "no job with id " + std::string(id)});
}

// A job as read from Redis: its hash fields (JOB_FIELDS that exist) and history entries.
struct JobRecord {
    JobHash hash;  // empty: no such job (or it expired)
    std::vector<std::string> history;
};

// The commands that read one job: HMGET of its fields, LRANGE of its newest history entries.
void add_job_reads(std::vector<std::vector<std::string>>& commands, const std::string& id) {
    std::vector<std::string> hmget{"HMGET", std::string(JOB_KEY_PREFIX) + id};
    for (std::string_view field : JOB_FIELDS) hmget.emplace_back(field);
    commands.push_back(std::move(hmget));
    commands.push_back({"LRANGE", std::string(HISTORY_KEY_PREFIX) + id,
                        std::to_string(-MAX_HISTORY_ENTRIES), "-1"});
}

// Takes a job's HMGET reply for JOB_FIELDS and LRANGE reply for its history.
JobRecord to_record(RedisValue& hmget, RedisValue& lrange) {
    JobRecord record;
    constexpr std::size_t count = std::size(JOB_FIELDS);
    for (std::size_t i = 0; i < count && i < hmget.elements.size(); ++i)
        if (hmget.elements[i].kind == RedisValue::Kind::STRING)
            record.hash.emplace_back(JOB_FIELDS[i], std::move(hmget.elements[i].str));
    if (!record.hash.empty()) {
        for (auto& entry : lrange.elements)
            if (entry.kind == RedisValue::Kind::STRING) record.history.push_back(std::move(entry.str));
    }
    return record;
}

// Turns one XRANGE element ([id, [field, value, ...]]) into an EventEntry.
std::optional<EventEntry> to_entry(const RedisValue& v) {
    if (v.kind != RedisValue::Kind::ARRAY || v.elements.size() != 2) return std::nullopt;
    EventEntry e;
    e.id = v.elements[0].str;
    const auto& fields = v.elements[1].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2)
        e.fields.emplace_back(fields[i].str, fields[i + 1].str);
    return e;
}

// Builds a command's argument list. (GCC 12 mis-compiles braced string lists inside co_await,
// so arguments are built in a statement of their own.)
template <class... Parts>
std::vector<std::string> args(Parts&&... parts) {
    std::vector<std::string> out;
    (out.emplace_back(std::forward<Parts>(parts)), ...);
    return out;
}

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

bool quiet_close(const error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == beast::error::timeout || ec == asio::error::operation_aborted ||
           ec == asio::error::connection_reset || ec == asio::error::eof ||
           ec == asio::error::broken_pipe || ec == asio::error::bad_descriptor;
}

// Logs an exception that escaped a coroutine, where it was spawned.
auto log_failure(const char* what) {
    return [what](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("{}: {}", what, ex.what());
        }
    };
}

// An open SSE stream's hold on its client's socket. Between events the stream waits for the
// socket to become readable, the one operation it has pending: a notice, the shard's tick
// (once `due` has passed) or shutdown interrupts that wait by cancelling it, and the client
// hanging up ends it by itself, so a client that leaves a quiet stream is noticed at once.
// Writes get a deadline the shard's tick enforces, which spares each stream a timer.
class StreamWaiter final : public Wakeable {
public:
    StreamWaiter(tcp::socket& socket, Clock::duration write_timeout)
        : socket_(socket), write_timeout_(write_timeout) {}

    void wake_with(EventEntry event) override {
        if (pushed_.size() < MAX_PUSHED) {
            pushed_.push_back(std::move(event));
        } else {
            overflowed_ = true;
        }
        wake();
    }

    // The events that came with notices since the last call, in order, and whether some had
    // to be left out (then the stream must read them back).
    std::vector<EventEntry> take_pushed(bool& overflowed) {
        overflowed = overflowed_;
        overflowed_ = false;
        return std::exchange(pushed_, {});
    }

    // Wakes the stream once its `due` time has passed: its re-check or keep-alive, or (while it
    // writes) the write deadline.
    void tick(Clock::time_point now) override {
        if (due <= now) wake();
    }

    void wake() override {
        woken_ = true;
        error_code ignored;
        if (writing_) {
            // Only the tick cuts a write short, once its deadline has passed; a notice must not.
            if (Clock::now() >= due) socket_.cancel(ignored);
            return;
        }
        if (!waiting_) return;
        if (timer_) {
            timer_->cancel();
        } else {
            socket_.cancel(ignored);
        }
    }

    // Suspends until woken, due, or the client hangs up (then hung_up() is true).
    awaitable<void> wait() {
        if (!woken_) {
            waiting_ = true;
            error_code ec;
            if (timer_) {
                timer_->expires_at(due);
                co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
            } else {
                co_await socket_.async_wait(tcp::socket::wait_read,
                                            asio::redirect_error(asio::use_awaitable, ec));
                error_code ignored;
                // Readable with nothing to read is EOF. Readable with data (a request pipelined
                // behind the stream) says nothing about a hang-up and stays readable: from then
                // on the stream waits on a timer of its own.
                if (!ec && socket_.available(ignored) == 0) hung_up_ = true;
                if (!ec && !hung_up_) timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
            }
            waiting_ = false;
        }
        woken_ = false;
        due = Clock::time_point::max();
    }

    // Writes `bytes` within the write timeout; returns false when the connection is no longer
    // usable (the client went away, or did not take the bytes in time).
    awaitable<bool> write(std::string bytes) {
        writing_ = true;
        due = Clock::now() + write_timeout_;
        error_code ec;
        co_await asio::async_write(socket_, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
        writing_ = false;
        due = Clock::time_point::max();
        co_return !ec;
    }

    bool hung_up() const { return hung_up_; }

    // When the stream wants to be woken if nothing else wakes it; set before each wait().
    Clock::time_point due = Clock::time_point::max();

private:
    // Events held for a stream that is busy writing: past this many it reads them back instead.
    static constexpr std::size_t MAX_PUSHED = 64;

    tcp::socket& socket_;
    Clock::duration write_timeout_;
    std::unique_ptr<asio::steady_timer> timer_;
    std::vector<EventEntry> pushed_;
    bool overflowed_ = false;
    bool woken_ = false;
    bool waiting_ = false;
    bool writing_ = false;
    bool hung_up_ = false;
};

std::string chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return std::string(size) + std::string(data) + "\r\n";
}

}  // namespace

// One event-loop thread's worth of server: listener, sessions, Redis, broker link.
// Everything below runs on this shard's loop thread, except the constructor, bind() and the
// members called before run() starts or after it returns.
class Shard {
public:
    Shard(const ApiConfig& config, int index, std::atomic<std::size_t>& connections,
          zmq::context_t& zmq_ctx)
        : config_(config),
          index_(index),
          connections_(connections),
          acceptor_(ioc_),
          commands_(ioc_, config.redis_host, config.redis_port, "commands"),
          subscriber_(ioc_, config.redis_host, config.redis_port, "subscriber"),
          broker_(ioc_, zmq_ctx, config.broker_endpoint),
          drain_timer_(ioc_) {
        subscriber_.set_subscription(
            NOTIFY_CHANNEL,
            [this](const std::string& payload) {
                if (auto notice = parse_notice(payload)) {
                    notifier_.notify(notice->job_id, std::move(notice->event));
                } else {
                    log::warn("dropped a malformed notice on {} ({} bytes)", NOTIFY_CHANNEL, payload.size());
                }
            },
            // After a (re)subscribe notices may have been missed: everybody re-reads.
            [this] { notifier_.notify_all(); });
    }

    // Opens the listener on `port` (0 = any). Returns the bound port.
    std::uint16_t bind(std::uint16_t port, bool reuse_port) {
        const tcp::endpoint endpoint(asio::ip::make_address(config_.host), port);
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        if (reuse_port) {
            using reuse_port_option = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
            acceptor_.set_option(reuse_port_option(true));
        }
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        return acceptor_.local_endpoint().port();
    }

    // Connects the broker link (call from the thread that builds the shards, before run()).
    void start_broker() { broker_.start(); }

    // The shard's loop; returns once shutdown has drained everything.
    void run() {
        commands_.start();
        subscriber_.start();
        tick();
        asio::co_spawn(ioc_, accept_loop(), log_failure("accept loop"));
        ioc_.run();
        broker_.stop();
    }

    // Thread-safe: asks the shard to shut down gracefully.
    void request_shutdown() {
        asio::post(ioc_, [this] { begin_shutdown(); });
    }

private:
    // A session as the shard sees it, so shutdown can reach it.
    struct SessionRef {
        tcp::socket* socket = nullptr;  // the connection, wherever it lives at the moment
        bool idle = false;  // waiting for the next request: safe to close at once
    };

    // Counts a connection against the global limit and registers it with the shard.
    class ConnectionSlot {
    public:
        ConnectionSlot(Shard& shard, SessionRef* ref) : shard_(shard), ref_(ref) {
            shard_.sessions_.insert(ref_);
        }
        ~ConnectionSlot() {
            shard_.sessions_.erase(ref_);
            shard_.connections_.fetch_sub(1);
        }
        ConnectionSlot(const ConnectionSlot&) = delete;
        ConnectionSlot& operator=(const ConnectionSlot&) = delete;

    private:
        Shard& shard_;
        SessionRef* ref_;
    };

    // An SSE stream whose head is written: what following it needs.
    struct EventStream {
        std::string job_id;
        std::uint64_t last = 0;  // the last event the client has (Last-Event-ID)
        unsigned version = 11;   // of the request
        bool keep_alive = true;  // the request allows the connection to carry on
        // HTTP/1.1: the stream ends with the last chunk, and the connection may carry on.
        bool chunked() const { return version >= 11; }
    };

    // What a handler produced: a response to write, or an event stream to follow; neither
    // when the connection is no longer usable.
    struct Outcome {
        std::optional<HttpResult> result{};
        std::optional<EventStream> follow{};
    };

    // What answering one request leaves the session to do.
    struct Served {
        bool keep_alive = false;  // read another request afterwards
        std::optional<EventStream> follow{};
    };

    awaitable<void> accept_loop() {
        for (;;) {
            error_code ec;
            tcp::socket socket =
                co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                if (stopping_ || ec == asio::error::operation_aborted) co_return;
                log::warn("accept failed: {}", ec.message());
                // Out of file descriptors and the like: back off instead of spinning.
                asio::steady_timer pause(ioc_, std::chrono::milliseconds(100));
                co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                continue;
            }
            // Responses go out as several writes (head, SSE chunks): without TCP_NODELAY
            // Nagle holds each small one back until the client's delayed ACK, 40 ms.
            socket.set_option(asio::ip::tcp::no_delay(true), ec);
            if (connections_.fetch_add(1) >= config_.max_connections) {
                connections_.fetch_sub(1);
                if (rejecting_ < MAX_REJECTING)
                    asio::co_spawn(ioc_, reject(std::move(socket)), log_failure("reject"));
                continue;  // else the socket closes as it goes out of scope
            }
            asio::co_spawn(ioc_, session(std::move(socket)), log_failure("session"));
        }
    }

    // Answers 503 too_many_connections and closes.
    awaitable<void> reject(tcp::socket socket) {
        ++rejecting_;
        beast::tcp_stream stream(std::move(socket));
        HttpResult r = error_result({503, "too_many_connections",
                                     "the server has too many open connections; retry later"});
        r.headers.emplace_back("Retry-After", "1");
        stream.expires_after(REJECT_TIMEOUT);
        const bool written = co_await write_result(stream, std::move(r), 11, false);
        if (written) co_await linger(stream);
        --rejecting_;
    }

    // One HTTP/1.1 connection: read a request, answer it, repeat while keep-alive. An SSE
    // stream is opened and followed from here, once the request that asked for it and the
    // frames that handled it are gone: an open stream holds this frame, stream_events' and
    // its socket.
    awaitable<void> session(tcp::socket socket) {
        std::optional<beast::tcp_stream> stream(std::move(socket));
        SessionRef ref{&stream->socket(), false};
        ConnectionSlot slot(*this, &ref);
        beast::flat_buffer buffer;
        bool keep = true;
        while (keep && !stopping_) {
            if (buffer.size() == 0) {
                // Wait for the first bytes of the next request here, in a small frame: the
                // parser and handler frames come only with a request. An idle keep-alive
                // connection (or each of 10,000 clients connecting at once) then holds about
                // 2.9 KB instead of 4.5.
                stream->expires_after(config_.request_timeout);
                ref.idle = true;
                error_code ec;
                const std::size_t received = co_await stream->async_read_some(
                    buffer.prepare(FIRST_READ_BYTES), asio::redirect_error(asio::use_awaitable, ec));
                ref.idle = false;
                if (ec) break;  // closed, reset or idle too long: nothing to answer
                buffer.commit(received);
            }
            Served served = co_await serve_one(*stream, buffer, ref);
            keep = served.keep_alive;
            if (!served.follow) continue;
            const Opened opened = co_await open_stream(*stream, *served.follow);
            if (opened != Opened::STREAMING) {
                keep = keep && opened == Opened::ANSWERED;
                continue;
            }
            // While it streams the connection needs no Beast stream and no read buffer: the
            // bare socket is enough (StreamWaiter keeps the write deadline), and the Beast
            // stream and its timers are a good part of what an idle stream would hold.
            if (buffer.size() == 0) buffer.shrink_to_fit();
            tcp::socket streaming = stream->release_socket();
            stream.reset();
            ref.socket = &streaming;
            const bool usable = co_await stream_events(streaming, std::move(*served.follow));
            stream.emplace(std::move(streaming));
            ref.socket = &stream->socket();
            keep = keep && usable;
        }
        error_code ec;
        stream->socket().shutdown(tcp::socket::shutdown_send, ec);
        stream->close();
    }

    // Reads one request and answers it (or opens its event stream).
    awaitable<Served> serve_one(beast::tcp_stream& stream, beast::flat_buffer& buffer, SessionRef& ref) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(config_.max_header_bytes));
        parser.body_limit(config_.max_body);
        stream.expires_after(config_.request_timeout);
        ref.idle = true;
        error_code ec;
        co_await http::async_read_header(stream, buffer, parser,
                                         asio::redirect_error(asio::use_awaitable, ec));
        ref.idle = false;
        if (!ec) {
            const auto length = parser.content_length();
            if (length && *length > config_.max_body) ec = http::error::body_limit;
        }
        if (!ec && parser.get()[http::field::expect] == "100-continue" && !parser.is_done()) {
            http::response<http::empty_body> go_on{http::status::continue_, 11};
            co_await http::async_write(stream, go_on, asio::redirect_error(asio::use_awaitable, ec));
        }
        if (!ec && !parser.is_done())
            co_await http::async_read(stream, buffer, parser,
                                      asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (auto answer = read_error_result(ec)) {
                const bool written = co_await write_result(stream, std::move(*answer), 11, false);
                if (written) co_await linger(stream);
            }
            co_return Served{};
        }
        Request request = parser.release();
        stream.expires_never();
        const bool keep = request.keep_alive() && !stopping_;
        Outcome outcome = co_await handle(request);
        if (outcome.result) {
            const bool written =
                co_await write_result(stream, std::move(*outcome.result), request.version(), keep);
            co_return Served{keep && written};
        }
        if (outcome.follow) co_return Served{keep, std::move(outcome.follow)};
        co_return Served{};
    }

    // After answering a request we did not read to the end (413, 431, 400): stop sending and
    // read and discard what the client is still sending, for a bounded time and amount, so
    // closing does not reset the connection before the client has read our answer.
    awaitable<void> linger(beast::tcp_stream& stream) {
        error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream.expires_after(LINGER_TIMEOUT);
        std::vector<char> sink(64 * 1024);
        std::size_t drained = 0;
        while (!ec && drained < LINGER_MAX_BYTES) {
            drained += co_await stream.async_read_some(asio::buffer(sink),
                                                       asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    // The answer to a request that could not be read, or nullopt to just close.
    static std::optional<HttpResult> read_error_result(const error_code& ec) {
        if (ec == http::error::body_limit)
            return error_result({413, "body_too_large", "request body is larger than the limit"});
        if (ec == http::error::header_limit)
            return error_result({431, "headers_too_large", "request headers exceed 16 KiB"});
        if (quiet_close(ec)) return std::nullopt;
        if (ec.category() == http::make_error_code(http::error::bad_method).category())
            return error_result({400, "bad_request", "malformed HTTP request: " + ec.message()});
        return std::nullopt;
    }

    // Writes one response; returns false when the connection is no longer usable.
    awaitable<bool> write_result(beast::tcp_stream& stream, HttpResult r, unsigned version,
                                 bool keep_alive) {
        const std::string head = response_head(r, version, keep_alive);
        const std::array<asio::const_buffer, 2> bytes{asio::buffer(head), asio::buffer(r.body)};
        stream.expires_after(config_.write_timeout);
        error_code ec;
        co_await asio::async_write(stream, bytes, asio::redirect_error(asio::use_awaitable, ec));
        stream.expires_never();
        co_return !ec;
    }

    // Writes raw bytes (SSE); returns false when the connection is no longer usable.
    awaitable<bool> write_raw(beast::tcp_stream& stream, std::string bytes) {
        stream.expires_after(config_.write_timeout);
        error_code ec;
        co_await asio::async_write(stream, asio::buffer(bytes),
                                   asio::redirect_error(asio::use_awaitable, ec));
        stream.expires_never();
        co_return !ec;
    }

    // Routes a request to its handler. A handler that throws answers 500 (and is logged).
    awaitable<Outcome> handle(Request& request) {
        const Target target = split_target(sv(request.target()));
        const RouteMatch match = match_route(sv(request.method_string()), target.path);
        if (match.kind == RouteMatch::NOT_FOUND)
            co_return Outcome{error_result({404, "not_found", "no such endpoint: " + target.path})};
        if (match.kind == RouteMatch::METHOD_NOT_ALLOWED) {
            HttpResult r = error_result(
                {405, "method_not_allowed",
                 std::string(request.method_string()) + " is not allowed on " + target.path});
            r.headers.emplace_back("Allow", match.allow);
            co_return Outcome{std::move(r)};
        }
        try {
            // Each co_await stands alone in its statement: GCC 12 double-destroys temporaries
            // of a co_await nested in a larger expression.
            HttpResult result;
            switch (match.route) {
                case Route::HEALTHZ: result = json_result(200, {{"status", "ok"}}); break;
                case Route::READYZ: result = co_await readyz(); break;
                case Route::SUBMIT_JOB: result = co_await submit_job(request); break;
                case Route::GET_JOB: result = co_await get_job(match.job_id); break;
                case Route::CANCEL_JOB: result = co_await cancel_job(match.job_id); break;
                case Route::GET_RESULT: result = co_await get_result(match.job_id, target); break;
                case Route::RETRY_JOB: result = co_await retry_job(match.job_id); break;
                case Route::LIST_DEAD: result = co_await list_dead(target); break;
                case Route::GET_EVENTS: co_return open_events(match.job_id, target, request);
            }
            co_return Outcome{std::move(result)};
        } catch (const std::exception& e) {
            log::error("{} {} failed: {}", std::string(request.method_string()), target.path, e.what());
        }
        co_return Outcome{error_result({500, "internal_error", "internal error"})};
    }

    awaitable<HttpResult> readyz() {
        const auto deadline = Clock::now() + READY_TIMEOUT;
        auto ping = broker_.send(proto::Ping{});  // in flight while Redis answers
        std::vector<std::string> command = args("PING");
        const RedisValue pong = co_await commands_.command(std::move(command), READY_TIMEOUT);
        const proto::Reply reply = co_await broker_.wait(std::move(ping), deadline);
        const bool redis_ok = pong.ok();
        const bool broker_ok = reply.status == 200;
        if (redis_ok && broker_ok)
            co_return json_result(200, {{"status", "ready"}, {"redis", "ok"}, {"broker", "ok"}});
        std::string message;
        if (!redis_ok) message += "redis: " + pong.str;
        if (!broker_ok) {
            if (!message.empty()) message += "; ";
            message += "broker: " + (reply.message.empty() ? reply.code : reply.message);
        }
        co_return error_result({503, "not_ready", message});
    }

    awaitable<HttpResult> submit_job(const Request& request) {
        std::optional<std::string_view> key;
        const auto keys = request.equal_range(
            beast::string_view(IDEMPOTENCY_HEADER.data(), IDEMPOTENCY_HEADER.size()));
        if (keys.first != keys.second) {
            if (std::next(keys.first) != keys.second)
                co_return error_result({422, "invalid_request",
                                        std::string(IDEMPOTENCY_HEADER) + " must be given once"});
            key = sv(keys.first->value());
        }
        auto parsed = parse_submit(request.body(), make_job_id(), key);
        if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
        auto& submit = std::get<proto::Submit>(parsed);
        const proto::Reply reply = co_await broker_.request(submit, config_.broker_timeout);
        if (reply.status >= 500)
            log::warn("submit {}: broker answered {} {} {}", submit.job_id, reply.status, reply.code,
                      reply.message);
        co_return submit_result(submit, reply);
    }

    awaitable<HttpResult> retry_job(const std::string& id) {
        if (!is_uuid(id)) co_return job_not_found(id);
        proto::Retry retry;
        retry.job_id = id;
        const proto::Reply reply = co_await broker_.request(retry, config_.broker_timeout);
        if (reply.status >= 500)
            log::warn("retry {}: broker answered {} {} {}", id, reply.status, reply.code, reply.message);
        co_return retry_result(id, reply);
    }

    // GET /v1/dead: one page of dead jobs, newest first. Two round trips whatever the page
    // size: the page of ids with the total, then every job's fields and history.
    awaitable<HttpResult> list_dead(const Target& target) {
        auto parsed = parse_page(target.query);
        if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
        const Page page = std::get<Page>(parsed);
        std::vector<std::vector<std::string>> head;
        head.push_back(args("ZCARD", std::string(DEAD_KEY)));
        head.push_back(args("ZREVRANGE", std::string(DEAD_KEY), std::to_string(page.offset),
                            std::to_string(page.offset + page.limit - 1)));
        const auto counted = co_await transaction(std::move(head));
        if (!counted) co_return redis_unavailable();
        std::vector<std::string> ids;
        for (const auto& element : (*counted)[1].elements)
            if (element.kind == RedisValue::Kind::STRING) ids.push_back(element.str);
        const auto records = co_await load_jobs(ids);
        if (!records) co_return redis_unavailable();
        JsonWriter body;
        body.begin_object().key("jobs").begin_array();
        for (const auto& record : *records)
            if (!record.hash.empty()) body.raw(job_json(record.hash, record.history));
        body.end_array().key("total").integer((*counted)[0].integer);
        body.key("limit").integer(page.limit).key("offset").integer(page.offset).end_object();
        co_return text_result(200, body.take());
    }

    awaitable<HttpResult> cancel_job(const std::string& id) {
        if (!is_uuid(id)) co_return job_not_found(id);
        proto::Cancel cancel;
        cancel.job_id = id;
        const proto::Reply reply = co_await broker_.request(cancel, config_.broker_timeout);
        co_return cancel_result(id, reply);
    }

    // Runs `commands` as one MULTI ... EXEC in a single round trip, so they see one moment of
    // Redis (a broker script never lands between them). Returns EXEC's replies, one per
    // command, or nullopt when Redis is unavailable or any of them failed.
    awaitable<std::optional<std::vector<RedisValue>>> transaction(
        std::vector<std::vector<std::string>> commands) {
        const std::size_t count = commands.size();
        commands.insert(commands.begin(), args("MULTI"));
        commands.push_back(args("EXEC"));
        std::vector<RedisValue> replies = co_await commands_.pipeline(std::move(commands), REDIS_TIMEOUT);
        RedisValue& exec = replies.back();
        if (exec.kind != RedisValue::Kind::ARRAY || exec.elements.size() != count) {
            if (!exec.ok()) log::debug("redis transaction failed: {}", exec.str);
            co_return std::nullopt;
        }
        for (const auto& value : exec.elements)
            if (!value.ok()) co_return std::nullopt;
        co_return std::move(exec.elements);
    }

    // Reads the jobs `ids` (fields and history) in one transaction: nullopt when Redis is
    // unavailable; a record with an empty hash for a job that does not exist.
    awaitable<std::optional<std::vector<JobRecord>>> load_jobs(const std::vector<std::string>& ids) {
        std::vector<JobRecord> records;
        if (ids.empty()) co_return records;
        std::vector<std::vector<std::string>> commands;
        commands.reserve(ids.size() * 2);
        for (const auto& id : ids) add_job_reads(commands, id);
        auto replies = co_await transaction(std::move(commands));
        if (!replies) co_return std::nullopt;
        records.reserve(ids.size());
        for (std::size_t i = 0; i < ids.size(); ++i)
            records.push_back(to_record((*replies)[2 * i], (*replies)[2 * i + 1]));
        co_return records;
    }

    // Reads one job: nullopt when Redis is unavailable, an empty hash for no such job.
    awaitable<std::optional<JobRecord>> load_job(const std::string& id) {
        std::vector<std::string> ids{id};
        auto records = co_await load_jobs(ids);
        if (!records) co_return std::nullopt;
        co_return std::move(records->front());
    }

    awaitable<HttpResult> get_job(const std::string& id) {
        if (!is_uuid(id)) co_return job_not_found(id);
        const auto job = co_await load_job(id);
        if (!job) co_return redis_unavailable();
        if (job->hash.empty()) co_return job_not_found(id);
        co_return text_result(200, job_json(job->hash, job->history));
    }

    // Long poll: 200 once the job is terminal, 202 with its current state when `wait` runs out.
    awaitable<HttpResult> get_result(const std::string& id, const Target& target) {
        int wait_s = 0;
        if (auto it = target.query.find("wait"); it != target.query.end()) {
            auto parsed = parse_wait(it->second);
            if (auto* error = std::get_if<ApiError>(&parsed)) co_return error_result(*error);
            wait_s = std::get<int>(parsed);
        }
        if (!is_uuid(id)) co_return job_not_found(id);
        Waiter waiter(ioc_);
        JobWatch watch(notifier_, id, waiter);  // before the first read: no notice falls in between
        const auto deadline = Clock::now() + std::chrono::seconds(wait_s);
        for (;;) {
            const auto job = co_await load_job(id);
            if (!job) co_return redis_unavailable();
            if (job->hash.empty()) co_return job_not_found(id);
            const std::string* status = hash_field(job->hash, "status");
            if (status && is_terminal_status(*status))
                co_return text_result(200, job_json(job->hash, job->history));
            const auto now = Clock::now();
            if (now >= deadline || stopping_) co_return text_result(202, job_json(job->hash, job->history));
            const Clock::duration pause = std::min<Clock::duration>(RECHECK_INTERVAL, deadline - now);
            co_await wait_for(waiter, pause);
        }
    }

    // Server-Sent Events, step 1: checks the request. The session does the rest (open_stream,
    // stream_events) once this request and the frames that handled it are gone: 10,000 clients
    // opening their streams at once then hold little more than their session.
    Outcome open_events(const std::string& id, const Target& target, const Request& request) {
        EventStream opened{id};
        std::optional<std::string> given;
        if (auto h = request.find("Last-Event-ID"); h != request.end())
            given = std::string(h->value());
        else if (auto q = target.query.find("last_event_id"); q != target.query.end())
            given = q->second;
        if (given) {
            auto parsed = parse_last_event_id(*given);
            if (!parsed || *parsed > MAX_EVENT_ID)
                return Outcome{error_result({400, "invalid_request", "Last-Event-ID must be a non-negative integer"})};
            opened.last = *parsed;
        }
        if (!is_uuid(id)) return Outcome{job_not_found(id)};
        opened.version = request.version();
        opened.keep_alive = request.keep_alive();
        return Outcome{std::nullopt, std::move(opened)};
    }

    // What one read of a job's stream found and wrote.
    struct Sent {
        bool ok = false;        // Redis answered
        bool written = true;    // false: the connection is no longer usable
        bool any = false;       // at least one event was new
        bool finished = false;  // a terminal event was among them
        bool full = false;      // a whole batch came: more may be waiting
    };

    // Server-Sent Events, step 3: replays from Last-Event-ID and follows the job until it ends,
    // on a stream whose head is written. Returns whether the connection may carry on. This
    // frame lives as long as the stream, so what each read needs lives in send_new_events'.
    awaitable<bool> stream_events(tcp::socket& socket, EventStream events) {
        StreamWaiter waiter(socket, config_.write_timeout);
        JobWatch watch(notifier_, events.job_id, waiter);
        auto last_write = Clock::now();
        // Read what is new and write it (one batch in memory at most); stop after a terminal
        // event; otherwise sleep until notified, the client hangs up, or the re-check /
        // keep-alive is due.
        for (;;) {
            const Sent sent = co_await send_new_events(events, waiter);
            if (!sent.written) co_return false;
            if (sent.any) last_write = Clock::now();
            if (sent.finished) break;
            if (sent.full) continue;
            if (sent.ok && !sent.any) {
                const bool over = co_await job_is_over(events.job_id, events.last);
                if (over) break;
            }
            if (stopping_) break;
            const auto keepalive_due = last_write + config_.sse_keepalive;
            if (Clock::now() < keepalive_due) {
                waiter.due = std::min(Clock::now() + RECHECK_INTERVAL, keepalive_due);
                co_await waiter.wait();
                if (waiter.hung_up()) co_return false;
            }
            if (Clock::now() >= keepalive_due && !stopping_) {
                const bool written = co_await waiter.write(frame(events, ": keep-alive\n\n"));
                if (!written) co_return false;
                last_write = Clock::now();
            }
        }
        if (!events.chunked()) co_return false;
        const bool written = co_await waiter.write(std::string("0\r\n\r\n"));
        co_return written;
    }

    enum class Opened {
        STREAMING,  // the head is written
        ANSWERED,   // with an error, and the connection may carry on
        CLOSED,     // answered (or not) and the connection is done
    };

    // Server-Sent Events, step 2: looks the job up; answers 404 (or 503 when Redis does not
    // answer) if it cannot be followed, else writes the head of the stream.
    awaitable<Opened> open_stream(beast::tcp_stream& stream, const EventStream& events) {
        std::vector<std::string> command = args("EXISTS", "sluice:job:" + events.job_id);
        const RedisValue exists = co_await commands_.command(std::move(command), REDIS_TIMEOUT);
        if (!exists.ok() || exists.integer == 0) {
            const bool keep = events.keep_alive && !stopping_;
            HttpResult refused = exists.ok() ? job_not_found(events.job_id) : redis_unavailable();
            const bool written = co_await write_result(stream, std::move(refused), events.version, keep);
            co_return written && keep ? Opened::ANSWERED : Opened::CLOSED;
        }
        std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "X-Accel-Buffering: no\r\n";
        head += events.chunked() ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n";
        const bool written = co_await write_raw(stream, std::move(head));
        co_return written ? Opened::STREAMING : Opened::CLOSED;
    }

    // Writes what is new after `events.last` as one chunk and advances `last`: the events that
    // came with their notices when they continue the stream, else (or after a gap) one XRANGE.
    awaitable<Sent> send_new_events(EventStream& events, StreamWaiter& waiter) {
        Sent sent;
        std::string text;
        bool gap = false;
        for (const EventEntry& entry : waiter.take_pushed(gap)) {
            const auto seq = event_seq(entry);
            if (gap || !seq || *seq > events.last + 1) {
                gap = true;
                break;
            }
            if (*seq <= events.last) continue;  // already read back
            if (add_event_text(text, events, entry, *seq)) {
                sent.finished = true;
                break;
            }
        }
        if (!sent.finished && (gap || text.empty())) {
            std::vector<std::string> command =
                args("XRANGE", "sluice:events:" + events.job_id, std::to_string(events.last + 1) + "-0",
                     "+", "COUNT", std::to_string(EVENT_BATCH));
            const RedisValue batch = co_await commands_.command(std::move(command), REDIS_TIMEOUT);
            sent.ok = batch.ok();
            sent.full = sent.ok && batch.elements.size() >= static_cast<std::size_t>(EVENT_BATCH);
            for (const auto& element : batch.elements) {
                auto entry = to_entry(element);
                if (!entry) continue;
                const auto seq = event_seq(*entry);
                if (!seq || *seq <= events.last) continue;
                if (add_event_text(text, events, *entry, *seq)) {
                    sent.finished = true;
                    break;
                }
            }
        } else {
            sent.ok = true;
        }
        if (text.empty()) co_return sent;
        sent.any = true;
        sent.written = co_await waiter.write(frame(events, text));
        co_return sent;
    }

    // Appends `entry`, event number `seq` (after `events.last`), as SSE text and advances
    // `last`. Returns true when it is the job's terminal event.
    static bool add_event_text(std::string& text, EventStream& events, const EventEntry& entry,
                               std::uint64_t seq) {
        text += format_sse_event(events.job_id, entry);
        events.last = seq;
        const std::string* event = event_field(entry, "event");
        return event && is_terminal_status(*event);
    }

    // SSE text as it goes on the wire: a chunk, unless the stream is HTTP/1.0.
    static std::string frame(const EventStream& events, std::string_view text) {
        return events.chunked() ? chunk(text) : std::string(text);
    }

    // True when nothing more can come for a stream that has sent up to `last`: the job is gone
    // (expired), or it is terminal and its last event number is not past `last`.
    awaitable<bool> job_is_over(const std::string& id, std::uint64_t last) {
        std::vector<std::string> command = args("HMGET", "sluice:job:" + id, "status", "seq");
        const RedisValue v = co_await commands_.command(std::move(command), REDIS_TIMEOUT);
        if (!v.ok() || v.elements.size() != 2) co_return false;
        if (v.elements[0].kind == RedisValue::Kind::NIL) co_return true;  // hash expired
        if (!is_terminal_status(v.elements[0].str)) co_return false;
        const auto seq = parse_last_event_id(v.elements[1].str);
        co_return !seq || *seq <= last;
    }

    // Shutdown, step 1: stop accepting, close idle connections, wake long polls and SSE
    // streams (they answer/close), then wait for in-flight requests up to the grace period.
    void begin_shutdown() {
        if (stopping_) return;
        stopping_ = true;
        log::info("shard {}: shutting down", index_);
        error_code ec;
        acceptor_.close(ec);
        for (SessionRef* s : sessions_)
            if (s->idle) s->socket->cancel(ec);
        notifier_.notify_all();
        shutdown_deadline_ = Clock::now() + config_.shutdown_grace;
        drain();
    }

    // Once per TICK_INTERVAL: wakes the event streams whose re-check or keep-alive is due, so
    // that an open stream needs no timer of its own.
    void tick() {
        notifier_.tick(Clock::now());
        tick_timer_.expires_after(TICK_INTERVAL);
        tick_timer_.async_wait([this](error_code ec) {
            if (!ec && !stopping_) tick();
        });
    }

    void drain() {
        if (sessions_.empty() || Clock::now() >= shutdown_deadline_) {
            finish_shutdown();
            return;
        }
        drain_timer_.expires_after(std::chrono::milliseconds(20));
        drain_timer_.async_wait([this](error_code ec) {
            if (!ec) drain();
        });
    }

    // Shutdown, step 2: close whatever is left so every coroutine ends and run() returns.
    void finish_shutdown() {
        error_code ec;
        for (SessionRef* s : sessions_) s->socket->close(ec);
        broker_.cancel_all();
        tick_timer_.cancel();
        notifier_.notify_all();
        commands_.stop();
        subscriber_.stop();
    }

    asio::io_context ioc_{1};  // first member: destroyed last
    const ApiConfig& config_;
    int index_;
    std::atomic<std::size_t>& connections_;
    tcp::acceptor acceptor_;
    Notifier notifier_;
    RedisConnection commands_;
    RedisConnection subscriber_;
    BrokerLink broker_;
    std::unordered_set<SessionRef*> sessions_;
    int rejecting_ = 0;
    bool stopping_ = false;
    asio::steady_timer drain_timer_;
    asio::steady_timer tick_timer_{ioc_};
    Clock::time_point shutdown_deadline_{};
};

namespace {
zmq::context_t& zmq_context() {
    static zmq::context_t context(1);
    return context;
}
}  // namespace

Server::Server(ApiConfig config) : config_(std::move(config)) {}

Server::~Server() {
    shutdown();
    join();
}

std::uint16_t Server::bind() {
    const int count = std::max(1, config_.threads);
    std::uint16_t port = config_.port;
    for (int i = 0; i < count; ++i) {
        auto shard = std::make_unique<Shard>(config_, i, connections_, zmq_context());
        // SO_REUSEPORT only when several shards share the port: a lone listener should never
        // share a port picked for it with some other process.
        port = shard->bind(port, count > 1);
        shards_.push_back(std::move(shard));
    }
    return port;
}

void Server::start() {
    for (auto& shard : shards_) shard->start_broker();
    for (auto& shard : shards_) threads_.emplace_back([s = shard.get()] { s->run(); });
}

void Server::shutdown() {
    for (auto& shard : shards_) shard->request_shutdown();
}

void Server::join() {
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

}  // namespace sluice::api
