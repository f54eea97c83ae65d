// HTTP connections of one shard (see http_session.hpp).
#include "http_session.hpp"

#include "cors.hpp"
#include "event_stream.hpp"
#include "http_framing.hpp"
#include "http_wire.hpp"
#include "job_reads.hpp"
#include "routes.hpp"
#include "ws_session.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <vector>

namespace sluice::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;

// The first read of a request: Beast reads at least this much at a time anyway.
constexpr std::size_t FIRST_READ_BYTES = 512;
// How long a connection past the limit gets to take its 503.
constexpr auto REJECT_TIMEOUT = std::chrono::milliseconds(1000);
// Lingering close after an error answer: how long and how much we keep reading and discarding.
constexpr auto LINGER_TIMEOUT = std::chrono::milliseconds(2000);
constexpr std::size_t LINGER_MAX_BYTES = 16 * 1024 * 1024;

// What answering one request leaves the session to do.
struct Served {
    bool keep_alive = false;  // read another request afterwards
    std::optional<EventStream> follow{};
    std::optional<WebSocketOpen> upgrade{};  // the connection becomes a WebSocket
};

// How opening a requested event stream went.
enum class Opened {
    STREAMING,  // the head is written
    ANSWERED,   // with an error, and the connection may carry on
    CLOSED,     // answered (or not) and the connection is done
};

bool quiet_close(const error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == beast::error::timeout || ec == asio::error::operation_aborted ||
           ec == asio::error::connection_reset || ec == asio::error::eof ||
           ec == asio::error::broken_pipe || ec == asio::error::bad_descriptor;
}

// The answer to a request that could not be read, or nullopt to just close.
std::optional<HttpResult> read_error_result(const error_code& ec) {
    if (ec == http::error::body_limit)
        return error_result(errors::BODY_TOO_LARGE, "request body is larger than the limit");
    if (ec == http::error::header_limit)
        return error_result(errors::HEADERS_TOO_LARGE,
                            "request headers exceed " + std::to_string(limits::MAX_HEADER_BYTES / 1024) + " KiB");
    if (quiet_close(ec)) return std::nullopt;
    if (ec.category() == http::make_error_code(http::error::bad_method).category())
        return error_result(errors::BAD_REQUEST, "malformed HTTP request: " + ec.message());
    return std::nullopt;
}

// The answer to a request whose header refuses it before any of its body is read: framing
// that could let a request hide behind another (400), a body announced past the limit (413).
// nullopt: read on.
std::optional<HttpResult> header_refusal(const http::request_parser<http::string_body>& parser, std::size_t max_body) {
    if (const auto problem = framing_problem(parser.get()))
        return error_result(errors::BAD_REQUEST, "malformed HTTP request: " + std::string(*problem));
    const auto length = parser.content_length();
    if (length && *length > max_body) return read_error_result(http::error::body_limit);
    return std::nullopt;
}

// Writes `bytes` (a response head, then maybe a body) within the write timeout; returns
// false when the connection is no longer usable.
template <class Buffers>
awaitable<bool> write_bytes(beast::tcp_stream& stream, const Buffers& bytes, Clock::duration timeout) {
    stream.expires_after(timeout);
    error_code ec;
    co_await asio::async_write(stream, bytes, asio::redirect_error(asio::use_awaitable, ec));
    stream.expires_never();
    co_return !ec;
}

// Writes one response as one gather write; returns false when the connection is no longer usable.
awaitable<bool> write_result(ShardContext& ctx, beast::tcp_stream& stream, HttpResult r, unsigned version,
                             bool keep_alive) {
    const std::string head = response_head(r, version, keep_alive);
    const std::array<asio::const_buffer, 2> bytes{asio::buffer(head), asio::buffer(r.body)};
    const bool written = co_await write_bytes(stream, bytes, ctx.config.write_timeout);
    co_return written;
}

// After answering a request we did not read to the end (413, 431, 400): stop sending and
// read and discard what the client is still sending, for a bounded time and amount, so
// closing does not reset the connection before the client has read our answer.
awaitable<void> linger(beast::tcp_stream& stream) {
    error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(LINGER_TIMEOUT);
    std::vector<char> sink(64 * 1024);
    std::size_t discarded = 0;
    while (!ec && discarded < LINGER_MAX_BYTES) {
        discarded += co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    }
}

// Reads one request and answers it (or hands back the event stream it asked for).
awaitable<Served> serve_one(ShardContext& ctx, beast::tcp_stream& stream, beast::flat_buffer& buffer,
                            Sessions::Ref& ref) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(ctx.config.max_header_bytes));
    parser.body_limit(ctx.config.max_body);
    stream.expires_after(ctx.config.request_timeout);
    ref.idle = true;
    error_code ec;
    co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    ref.idle = false;
    std::optional<HttpResult> refusal;
    if (!ec) refusal = header_refusal(parser, ctx.config.max_body);
    if (!ec && !refusal && parser.get()[http::field::expect] == "100-continue" && !parser.is_done()) {
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        co_await http::async_write(stream, go_on, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec && !refusal && !parser.is_done())
        co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || refusal) {
        // Whatever follows on this connection can no longer be framed: answer, then close.
        if (!refusal) refusal = read_error_result(ec);
        if (refusal) {
            const bool written = co_await write_result(ctx, stream, std::move(*refusal), 11, false);
            if (written) co_await linger(stream);
        }
        co_return Served{};
    }
    Request request = parser.release();
    stream.expires_never();
    const bool keep = request.keep_alive() && !ctx.stopping;
    Outcome outcome = co_await handle(ctx, request);
    if (outcome.result) {
        const bool written = co_await write_result(ctx, stream, std::move(*outcome.result), request.version(), keep);
        co_return Served{keep && written};
    }
    if (outcome.upgrade) {
        outcome.upgrade->request = std::move(request);
        co_return Served{false, std::nullopt, std::move(outcome.upgrade)};
    }
    co_return Served{keep, std::move(outcome.follow)};
}

// Looks the job of a requested stream up; answers 404 (or 503 when Redis does not answer)
// if it cannot be followed, else counts the stream as a follower of the job in `following`
// and writes the head of the stream.
awaitable<Opened> open_stream(ShardContext& ctx, beast::tcp_stream& stream, const EventStream& events,
                              Followers::Ticket& following) {
    FollowCheck check = co_await check_follow(ctx, events.job_id, events.tenant);
    if (check.refused) {
        const bool keep = events.keep_alive && !ctx.stopping;
        const bool written = co_await write_result(ctx, stream, std::move(*check.refused), events.version, keep);
        co_return written && keep ? Opened::ANSWERED : Opened::CLOSED;
    }
    following = ctx.followers.follow(events.job_id, check.disconnect_grace_ms);
    const std::string head = sse_head(events.chunked(), cors_header_lines(events.cors_origin));
    const bool written = co_await write_bytes(stream, asio::buffer(head), ctx.config.write_timeout);
    co_return written ? Opened::STREAMING : Opened::CLOSED;
}

}  // namespace

void Sessions::close_idle() {
    error_code ec;
    for (Ref* ref : open_) {
        if (ref->farewell) ref->farewell->wake();
        else if (ref->idle) ref->socket->cancel(ec);
    }
}

void Sessions::close_all() {
    error_code ec;
    for (Ref* ref : open_) ref->socket->close(ec);
}

awaitable<void> reject_connection(Sessions& sessions, tcp::socket socket, ConnectionCounts::Admission admission) {
    const Sessions::Rejecting rejecting(sessions);
    beast::tcp_stream stream(std::move(socket));
    HttpResult r = admission == ConnectionCounts::Admission::CLIENT_FULL
                       ? error_result(errors::TOO_MANY_CONNECTIONS_FROM_CLIENT,
                                      "this client holds as many open connections as one client may; close one or "
                                      "retry later")
                       : error_result(errors::TOO_MANY_CONNECTIONS,
                                      "the server has too many open connections; retry later");
    r.headers.emplace_back("Retry-After", "1");
    const std::string head = response_head(r, 11, false);
    const std::array<asio::const_buffer, 2> bytes{asio::buffer(head), asio::buffer(r.body)};
    const bool written = co_await write_bytes(stream, bytes, REJECT_TIMEOUT);
    if (written) co_await linger(stream);
}

// One HTTP/1.1 connection: read a request, answer it, repeat while keep-alive. An SSE
// stream is opened and followed from here, once the request that asked for it and the
// frames that handled it are gone: an open stream holds this frame, stream_events' and
// its socket.
awaitable<void> serve_connection(ShardContext& ctx, Sessions& sessions, tcp::socket socket,
                                 ConnectionCounts::Ticket ticket) {
    const ConnectionCounts::Ticket counted = std::move(ticket);  // released as the connection closes
    std::optional<beast::tcp_stream> stream(std::move(socket));
    Sessions::Ref ref{&stream->socket(), false};
    const Sessions::Slot slot(sessions, &ref);
    beast::flat_buffer buffer;
    bool keep = true;
    bool first = true;
    while (keep && !ctx.stopping) {
        if (buffer.size() == 0) {
            // Wait for the first bytes of the next request here, in a small frame: the
            // parser and handler frames come only with a request. An idle keep-alive
            // connection (or each of 10,000 clients connecting at once) then holds about
            // 2.9 KB instead of 4.5. A new connection that says nothing gets less time.
            stream->expires_after(first ? ctx.config.first_byte_timeout : ctx.config.request_timeout);
            first = false;
            ref.idle = true;
            error_code ec;
            const std::size_t received = co_await stream->async_read_some(
                buffer.prepare(FIRST_READ_BYTES), asio::redirect_error(asio::use_awaitable, ec));
            ref.idle = false;
            if (ec) break;  // closed, reset or idle too long: nothing to answer
            buffer.commit(received);
        }
        Served served = co_await serve_one(ctx, *stream, buffer, ref);
        if (served.upgrade) {
            // The WebSocket takes the bare socket for the rest of the connection; it has its
            // own buffers (a client waits for the 101 before it sends a frame).
            buffer.shrink_to_fit();
            tcp::socket upgraded = stream->release_socket();
            stream.reset();
            co_await serve_websocket(ctx, ref, std::move(upgraded), std::move(*served.upgrade));
            co_return;
        }
        keep = served.keep_alive;
        if (!served.follow) continue;
        Followers::Ticket following;  // for as long as the stream is open
        const Opened opened = co_await open_stream(ctx, *stream, *served.follow, following);
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
        const bool usable = co_await stream_events(ctx, streaming, std::move(*served.follow));
        stream.emplace(std::move(streaming));
        ref.socket = &stream->socket();
        keep = keep && usable;
    }
    error_code ec;
    stream->socket().shutdown(tcp::socket::shutdown_send, ec);
    stream->close();
}

}  // namespace sluice::api
