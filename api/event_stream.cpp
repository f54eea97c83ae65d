// Server-Sent Events on an open stream (see event_stream.hpp).
#include "event_stream.hpp"

#include "http_wire.hpp"
#include "job_reads.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>

namespace sluice::api {
namespace {

using error_code = boost::system::error_code;

// Bounds on what one SSE client holds in api memory, in bytes: a batch stops once its SSE text
// passes BATCH_BYTES (the rest comes with the next read), so one write holds about 1 MiB, not
// 100 events of any size; reads are sized by next_read_count() to hold about as much.
constexpr std::size_t BATCH_BYTES = 1024 * 1024;

// What one read of a job's stream found and wrote.
struct Sent {
    bool ok = false;        // Redis answered
    bool written = true;    // false: the connection is no longer usable
    bool any = false;       // at least one event was new
    bool finished = false;  // a terminal event was among them
    bool full = false;      // a whole batch came: more may be waiting
};

// SSE text as it goes on the wire: a chunk, unless the stream is HTTP/1.0.
std::string frame(const EventStream& events, std::string_view text) {
    return events.chunked() ? chunk(text) : std::string(text);
}

// Appends `entry`, event number `seq` (after `events.last`), as SSE text and advances
// `last`. Returns true when it is the job's terminal event.
bool add_event_text(std::string& text, EventStream& events, const EventEntry& entry, std::uint64_t seq) {
    text += format_sse_event(events.job_id, entry);
    events.last = seq;
    const std::string* event = event_field(entry, "event");
    return event && is_terminal_status(*event);
}

// Writes what is new after `events.last` as one chunk and advances `last`: the events that
// came with their notices as far as they continue the stream, then, when some news came
// without its event or nothing came at all, one XRANGE of `read_count` events (adapted to
// their size for the next read).
awaitable<Sent> send_new_events(ShardContext& ctx, EventStream& events, StreamWaiter& waiter, int& read_count) {
    Sent sent;
    std::string text;
    StreamWaiter::Pushed pushed = waiter.take_pushed();
    bool read_back = pushed.read_back;
    for (const EventEntry& entry : pushed.events) {
        const auto seq = event_seq(entry);
        if (!seq || *seq > events.last + 1) {
            read_back = true;  // one went missing in between
            break;
        }
        if (*seq <= events.last) continue;  // already read back
        if (add_event_text(text, events, entry, *seq)) {
            sent.finished = true;
            break;
        }
    }
    if (!sent.finished && (read_back || text.empty())) {
        const EventPage page = co_await read_events(ctx, events.job_id, events.last, read_count);
        sent.ok = page.ok;
        sent.full = page.full;
        std::size_t largest = 0;
        for (const EventEntry& entry : page.events) {
            const auto seq = event_seq(entry);
            if (!seq || *seq <= events.last) continue;
            const std::size_t before = text.size();
            if (add_event_text(text, events, entry, *seq)) {
                sent.finished = true;
                break;
            }
            largest = std::max(largest, text.size() - before);
            if (text.size() >= BATCH_BYTES) {
                sent.full = true;  // the rest of the page comes with the next read
                break;
            }
        }
        read_count = next_read_count(read_count, largest, BATCH_BYTES);
    } else {
        sent.ok = true;
    }
    if (text.empty()) co_return sent;
    sent.any = true;
    sent.written = co_await waiter.write(frame(events, text));
    co_return sent;
}

}  // namespace

void StreamWaiter::wake() {
    pushed_.read_back = true;
    signal();
}

void StreamWaiter::wake_with(EventEntry event) {
    if (pushed_.events.size() < MAX_PUSHED) {
        pushed_.events.push_back(std::move(event));
    } else {
        pushed_.read_back = true;
    }
    signal();
}

void StreamWaiter::signal() {
    error_code ignored;
    switch (phase_) {
        case Phase::IDLE:
        case Phase::NEWS:
            phase_ = Phase::NEWS;
            return;
        case Phase::WAITING:
            if (timer_) {
                timer_->cancel();
            } else {
                socket_.cancel(ignored);
            }
            return;
        case Phase::WRITING:
        case Phase::WRITING_NEWS:
            phase_ = Phase::WRITING_NEWS;
            // Only the tick cuts a write short, once its deadline has passed; a notice must not.
            if (Clock::now() >= due) socket_.cancel(ignored);
            return;
        case Phase::HUNG_UP:
            return;
    }
}

void StreamWaiter::tick(Clock::time_point now) {
    if (due <= now) wake();
}

awaitable<void> StreamWaiter::wait() {
    if (phase_ == Phase::IDLE) {
        phase_ = Phase::WAITING;
        error_code ec;
        if (timer_) {
            timer_->expires_at(due);
            co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        } else {
            co_await socket_.async_wait(tcp::socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
            error_code ignored;
            // Readable with nothing to read is EOF. Readable with data (a request pipelined
            // behind the stream) says nothing about a hang-up and stays readable: from then
            // on the stream waits on a timer of its own.
            if (!ec && socket_.available(ignored) == 0) {
                phase_ = Phase::HUNG_UP;
            } else if (!ec) {
                timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
            }
        }
    }
    if (phase_ != Phase::HUNG_UP) phase_ = Phase::IDLE;
    due = Clock::time_point::max();
}

awaitable<bool> StreamWaiter::write(std::string bytes) {
    phase_ = phase_ == Phase::NEWS ? Phase::WRITING_NEWS : Phase::WRITING;
    due = Clock::now() + write_timeout_;
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    phase_ = phase_ == Phase::WRITING_NEWS ? Phase::NEWS : Phase::IDLE;
    due = Clock::time_point::max();
    co_return !ec;
}

awaitable<bool> stream_events(ShardContext& ctx, tcp::socket& socket, EventStream events) {
    StreamWaiter waiter(socket, ctx.config.write_timeout);
    JobWatch watch(ctx.notifier, events.job_id, waiter);
    auto last_write = Clock::now();
    int read_count = FIRST_READ_EVENTS;
    // Read what is new and write it (one batch in memory at most); stop after a terminal
    // event; otherwise sleep until notified, the client hangs up, or the re-check /
    // keep-alive is due.
    for (;;) {
        const Sent sent = co_await send_new_events(ctx, events, waiter, read_count);
        if (!sent.written) co_return false;
        if (sent.any) last_write = Clock::now();
        if (sent.finished) break;
        if (sent.full) continue;
        if (sent.ok && !sent.any) {
            const bool over = co_await job_is_over(ctx, events.job_id, events.last);
            if (over) break;
        }
        if (ctx.stopping) break;
        const auto keepalive_due = last_write + ctx.config.sse_keepalive;
        if (Clock::now() < keepalive_due) {
            waiter.due = std::min(Clock::now() + RECHECK_INTERVAL, keepalive_due);
            co_await waiter.wait();
            if (waiter.phase() == StreamWaiter::Phase::HUNG_UP) co_return false;
        }
        if (Clock::now() >= keepalive_due && !ctx.stopping) {
            const bool written = co_await waiter.write(frame(events, ": keep-alive\n\n"));
            if (!written) co_return false;
            last_write = Clock::now();
        }
    }
    if (!events.chunked()) co_return false;
    const bool written = co_await waiter.write(std::string(LAST_CHUNK));
    co_return written;
}

}  // namespace sluice::api
