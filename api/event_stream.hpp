// Server-Sent Events: following one job's event stream on a connection whose SSE head is
// written (GET /v1/jobs/{id}/events). Replays from Last-Event-ID, writes each event as it comes
// (with its notice, or read back from Redis after a gap), keeps the stream alive through
// proxies, and ends after the terminal event. An open stream holds its bare socket and this
// module's frames only: the session releases its Beast stream and read buffer first.
// Loop thread only.
#pragma once

#include "loop.hpp"
#include "request.hpp"
#include "shard_context.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::api {

using tcp = asio::ip::tcp;

// An SSE stream a request asked for: what following it needs.
struct EventStream {
    std::string job_id;
    std::uint64_t last = 0;  // the last event the client has (Last-Event-ID)
    unsigned version = 11;   // of the request
    bool keep_alive = true;  // the request allows the connection to carry on
    std::string tenant;      // a member key's tenant: the job must be of it; "": any job
    std::string cors_origin; // a listed browser origin (cors.hpp) the head allows; "": none
    // HTTP/1.1: the stream ends with the last chunk, and the connection may carry on.
    bool chunked() const { return version >= 11; }
};

// An open SSE stream's hold on its client's socket. Between events the stream waits for the
// socket to become readable, the one operation it has pending: a notice, the shard's tick
// (once `due` has passed) or shutdown interrupts that wait by cancelling it, and the client
// hanging up ends it by itself, so a client that leaves a quiet stream is noticed at once.
// Writes get a deadline the shard's tick enforces, which spares each stream a timer.
class StreamWaiter final : public Wakeable {
public:
    // What the stream is doing, as far as a wake-up is concerned.
    enum class Phase {
        IDLE,          // between waits and writes, nothing new
        NEWS,          // between waits and writes, woken: the next wait() returns at once
        WAITING,       // in wait(): a wake-up cancels it
        WRITING,       // in write(): only the write deadline cuts it short
        WRITING_NEWS,  // in write(), woken meanwhile: NEWS once the write ends
        HUNG_UP,       // the client closed the connection: the stream is over
    };

    // Events that came with notices, held for the stream while it was busy.
    struct Pushed {
        std::vector<EventEntry> events;
        // Some news came without its event (too big for its notice, left out past MAX_PUSHED,
        // a re-check due): the stream must read Redis back after the events it holds.
        bool read_back = false;
    };

    StreamWaiter(tcp::socket& socket, Clock::duration write_timeout)
        : socket_(socket), write_timeout_(write_timeout) {}

    // News without its event: the stream reads Redis back (after any events it holds).
    void wake() override;
    // News with its event: held for the stream, which writes it without a read when it is next.
    void wake_with(EventEntry event) override;
    // Wakes the stream once its `due` time has passed: its re-check or keep-alive, or (while it
    // writes) the write deadline.
    void tick(Clock::time_point now) override;

    // The events that came with notices since the last call, in order.
    Pushed take_pushed() { return std::exchange(pushed_, {}); }

    // Suspends until woken, due, or the client hangs up (then phase() is HUNG_UP).
    awaitable<void> wait();

    // Writes `bytes` within the write timeout; returns false when the connection is no longer
    // usable (the client went away, or did not take the bytes in time).
    awaitable<bool> write(std::string bytes);

    Phase phase() const { return phase_; }

    // When the stream wants to be woken if nothing else wakes it; set before each wait().
    Clock::time_point due = Clock::time_point::max();

private:
    // Ends a wait at once, or marks the news for the next wait or the end of a write.
    void signal();

    // Events held for a stream that is busy writing: past this many it reads them back instead.
    static constexpr std::size_t MAX_PUSHED = 64;

    tcp::socket& socket_;
    Clock::duration write_timeout_;
    // Waits in place of the socket once a request is pipelined behind the stream (the socket
    // then stays readable and cannot signal a hang-up).
    std::unique_ptr<asio::steady_timer> timer_;
    Pushed pushed_;
    Phase phase_ = Phase::IDLE;
};

// Follows `events` on `socket`, whose SSE head (http_wire.hpp, sse_head) is written: replays
// from events.last and follows the job until its terminal event, shutdown or the client
// leaving. Returns whether the connection may carry on (the stream ended cleanly).
awaitable<bool> stream_events(ShardContext& ctx, tcp::socket& socket, EventStream events);

}  // namespace sluice::api
