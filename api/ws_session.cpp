// WebSocket connections (see ws_session.hpp).
#include "ws_session.hpp"

#include "job_reads.hpp"
#include "names.hpp"
#include "routes.hpp"
#include "ws_messages.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

namespace sluice::api {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using error_code = boost::system::error_code;
// Straight on the socket: the WebSocket keeps its own timeouts, and a beast::tcp_stream in
// between would add its state and a layer of handler to every pending read.
using WsStream = websocket::stream<tcp::socket>;

// The client's messages are read this much at a time into the reader's frame, rather than
// into a buffer that a pending read would hold on the heap: they are small and rare.
constexpr std::size_t READ_CHUNK_BYTES = 256;

// How long the sender sleeps when nothing wakes it: any news, a client message or shutdown
// does, so this only bounds a wait that nothing would otherwise end.
constexpr auto SENDER_NAP = std::chrono::hours(1);

constexpr std::string_view SLOW_REASON = "send queue full: resubscribe with last_seq";

class Connection;

// One job a connection follows, registered with the shard's notifier for as long as it lives.
// Only the sender reads Redis for it and only the sender destroys it (retire() just moves it
// aside), so a read in flight never outlives its subscription.
class Subscription final : public Wakeable {
public:
    Subscription(Connection& connection, Notifier& notifier, std::string id, std::uint64_t last_seq)
        : job_id(std::move(id)), last(last_seq), connection_(connection), watch_(notifier, job_id, *this) {}

    // News without the event (it was too big for its notice, or notices may have been lost):
    // read it back.
    void wake() override;
    // An event with its notice: sent at once when it is the next one, else read back.
    void wake_with(EventEntry event) override;
    // The re-check, once `due` has passed: notices are a fast path, Redis is the truth.
    void tick(Clock::time_point now) override;

    const std::string job_id;
    std::uint64_t last;                         // the last event sent (or the client had)
    int read_count = FIRST_READ_EVENTS;         // for the next read_events()
    bool caught_up = false;                     // the last read reached the end of the stream
    bool over = false;                          // retired: send nothing more
    bool dirty = false;                         // waiting in the connection's read list
    Clock::time_point due = Clock::time_point::max();
    Followers::Ticket following;                // counts the connection as a follower of the job

private:
    Connection& connection_;
    JobWatch watch_;  // last: registers once the rest is set up
};

// What one WebSocket holds: its subscriptions, its send queue and the state both coroutines
// share. The reader (read_loop) and the sender (send_loop) run on the shard's loop thread, so
// nothing here needs a lock.
class Connection {
public:
    Connection(ShardContext& ctx, WsStream& ws, const WebSocketOpen& open)
        : ctx_(ctx), ws_(ws), open_(open), waker_(ctx.ioc), write_deadline_(ctx.ioc) {}

    // The client's messages, one at a time, until it closes, the connection fails or is closing.
    awaitable<void> read_loop();
    // Writes the send queue and replays what subscriptions lack, until the reader ends or the
    // connection closes (then with its close frame).
    awaitable<void> send_loop();

    // Queues `message`; past the send queue's bound (the first message always fits) the
    // connection closes with WS_CLOSE_SLOW instead. Returns whether it was queued.
    bool send(std::string message);
    // Sends `entry` of `sub`, already known to be its next event; a terminal event ends `sub`.
    void deliver(Subscription& sub, const EventEntry& entry);
    // Puts `sub` on the list of subscriptions whose events the sender reads back from Redis.
    void mark_dirty(Subscription& sub);
    // Starts closing with `code` and `reason` (a string literal): what is queued is dropped, the
    // close frame goes out once the write in progress (if any) ends.
    void close_with(std::uint16_t code, std::string_view reason);

    Waiter& waker() { return waker_; }

private:
    awaitable<void> handle(std::string_view text);
    awaitable<void> subscribe(const ClientMessage& message);
    void unsubscribe(const ClientMessage& message);
    awaitable<void> cancel(const ClientMessage& message);
    // One read of a dirty subscription's events from Redis, sent as far as the replay bound.
    awaitable<void> catch_up(Subscription& sub);
    // Ends `sub`: no more events; the sender destroys it at its next turn.
    void retire(Subscription& sub);
    // Writes the message at the head of the queue; false when the connection failed.
    awaitable<bool> write_next();
    std::size_t replay_bytes() const { return ctx_.config.ws_send_queue_bytes / 2; }

    ShardContext& ctx_;
    WsStream& ws_;
    const WebSocketOpen& open_;
    Waiter waker_;  // wakes the sender: something to write or read back, or the end
    asio::steady_timer write_deadline_;  // a write the client does not take in time fails
    std::unordered_map<std::string, std::unique_ptr<Subscription>> subscriptions_;
    std::vector<std::unique_ptr<Subscription>> retired_;
    // Lists, not deques: an empty std::deque holds a block of its own, and most connections
    // have nothing queued and nothing to read back most of the time.
    std::list<Subscription*> dirty_;
    std::list<std::string> queue_;
    std::size_t queued_bytes_ = 0;  // of queue_ and the message being written
    // Set once the connection is closing: the close frame's code and reason (a literal).
    struct Closing {
        std::uint16_t code;
        std::string_view reason;
    };
    std::optional<Closing> closing_;
    bool peer_gone_ = false;  // a read failed: the client closed, or the connection failed
};

void Subscription::wake() {
    if (!over) connection_.mark_dirty(*this);
}

void Subscription::wake_with(EventEntry event) {
    if (over) return;
    const auto seq = event_seq(event);
    if (!caught_up || !seq || *seq > last + 1) {
        connection_.mark_dirty(*this);
    } else if (*seq == last + 1) {
        last = *seq;
        connection_.deliver(*this, event);
    }
}

void Subscription::tick(Clock::time_point now) {
    if (due <= now) wake();
}

bool Connection::send(std::string message) {
    if (closing_) return false;
    if (queued_bytes_ > 0 && queued_bytes_ + message.size() > ctx_.config.ws_send_queue_bytes) {
        close_with(WS_CLOSE_SLOW, SLOW_REASON);
        return false;
    }
    queued_bytes_ += message.size();
    queue_.push_back(std::move(message));
    waker_.wake();
    return true;
}

void Connection::deliver(Subscription& sub, const EventEntry& entry) {
    send(ws_event_message(sub.job_id, entry));
    const std::string* event = event_field(entry, "event");
    if (event && is_terminal_status(*event)) retire(sub);
}

void Connection::mark_dirty(Subscription& sub) {
    if (sub.dirty) return;
    sub.dirty = true;
    dirty_.push_back(&sub);
    waker_.wake();
}

void Connection::close_with(std::uint16_t code, std::string_view reason) {
    if (closing_) return;
    closing_ = Closing{code, reason};
    for (const std::string& message : queue_) queued_bytes_ -= message.size();
    queue_.clear();
    waker_.wake();
}

void Connection::retire(Subscription& sub) {
    sub.over = true;
    sub.following = {};
    if (sub.dirty) std::erase(dirty_, &sub);
    sub.dirty = false;
    const auto it = subscriptions_.find(sub.job_id);
    retired_.push_back(std::move(it->second));
    subscriptions_.erase(it);
}

awaitable<void> Connection::read_loop() {
    std::array<char, READ_CHUNK_BYTES> chunk;
    std::string message;
    while (!closing_) {
        error_code ec;
        const std::size_t read =
            co_await ws_.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {  // closed by the client, too big (Beast closed with 1009), timed out, failed
            peer_gone_ = true;
            break;
        }
        message.append(chunk.data(), read);
        if (!ws_.is_message_done()) continue;
        if (!ws_.got_text()) {
            close_with(static_cast<std::uint16_t>(websocket::close_code::unknown_data),
                       "binary messages are not accepted: send JSON text");
            break;
        }
        co_await handle(message);
        message.clear();
        message.shrink_to_fit();  // a waiting connection holds no message
    }
    waker_.wake();
}

awaitable<void> Connection::handle(std::string_view text) {
    const Checked<ClientMessage> parsed = parse_client_message(text);
    if (const auto* error = std::get_if<ApiError>(&parsed)) {
        send(ws_error_message("", *error));
        co_return;
    }
    const ClientMessage& message = std::get<ClientMessage>(parsed);
    if (auto refused = over_request_limit(ctx_, open_.principal)) {
        send(ws_error_message(message.job_id, *refused));
        co_return;
    }
    switch (message.op) {
        case ClientMessage::Op::SUBSCRIBE: co_await subscribe(message); break;
        case ClientMessage::Op::UNSUBSCRIBE: unsubscribe(message); break;
        case ClientMessage::Op::CANCEL: co_await cancel(message); break;
    }
}

awaitable<void> Connection::subscribe(const ClientMessage& message) {
    const std::string& id = message.job_id;
    // A read token's connection sees its job only: any other looks missing, as over HTTP.
    if (!is_uuid(id) || (!open_.token_job.empty() && id != open_.token_job)) {
        send(ws_error_message(id, job_not_found(id)));
        co_return;
    }
    if (subscriptions_.contains(id)) {
        send(ws_error_message(id, api_error(errors::INVALID_REQUEST, "this connection follows the job already")));
        co_return;
    }
    if (subscriptions_.size() >= ctx_.config.ws_max_subscriptions) {
        send(ws_error_message(id, api_error(errors::TOO_MANY_SUBSCRIPTIONS,
                                            "a connection follows at most " +
                                                std::to_string(ctx_.config.ws_max_subscriptions) +
                                                " jobs: unsubscribe from one first")));
        co_return;
    }
    const Principal& who = open_.principal;
    const std::string tenant = who.role == Role::MEMBER ? who.tenant : "";
    const FollowCheck check = co_await check_follow(ctx_, id, tenant);
    if (check.refused) {
        send(ws_error_message(id, *check.refused));
        co_return;
    }
    if (closing_) co_return;
    auto sub = std::make_unique<Subscription>(*this, ctx_.notifier, id, message.last_seq);
    sub->following = ctx_.followers.follow(id, check.disconnect_grace_ms);
    Subscription& added = *sub;
    subscriptions_.emplace(id, std::move(sub));
    send(ws_ack_message("subscribed", id));
    mark_dirty(added);  // replays from last_seq, then follows
}

void Connection::unsubscribe(const ClientMessage& message) {
    if (const auto it = subscriptions_.find(message.job_id); it != subscriptions_.end()) retire(*it->second);
    send(ws_ack_message("unsubscribed", message.job_id));
}

awaitable<void> Connection::cancel(const ClientMessage& message) {
    if (open_.principal.role == Role::JOB_READER) {
        const ApiError refused =
            api_error(errors::FORBIDDEN, "a read token follows a job; cancelling it needs an API key");
        send(ws_error_message(message.job_id, refused));
        co_return;
    }
    const HttpResult answer = co_await cancel_as(ctx_, open_.principal, message.job_id);
    send(answer.status == 200 ? ws_ack_message("canceled", message.job_id) : ws_error_message(message.job_id, answer));
}

awaitable<void> Connection::catch_up(Subscription& sub) {
    const EventPage page = co_await read_events(ctx_, sub.job_id, sub.last, sub.read_count);
    if (sub.over) co_return;  // unsubscribed, or ended by a notice, while Redis answered
    sub.due = Clock::now() + RECHECK_INTERVAL;
    if (!page.ok) co_return;  // Redis does not answer: the re-check tries again
    bool full = page.full;
    bool any = false;
    std::size_t batch = 0, largest = 0;
    for (const EventEntry& entry : page.events) {
        const auto seq = event_seq(entry);
        if (!seq || *seq <= sub.last) continue;
        const std::size_t before = queued_bytes_;
        sub.last = *seq;
        any = true;
        deliver(sub, entry);
        if (sub.over || closing_) co_return;
        largest = std::max(largest, queued_bytes_ - before);
        batch += queued_bytes_ - before;
        if (batch >= replay_bytes()) {
            full = true;  // the rest comes once the client has taken this
            break;
        }
    }
    sub.read_count = next_read_count(sub.read_count, largest, replay_bytes());
    sub.caught_up = !full;
    if (full) {
        mark_dirty(sub);
    } else if (!any) {
        const bool over = co_await job_is_over(ctx_, sub.job_id, sub.last);
        if (over && !sub.over) {
            retire(sub);
            send(ws_ack_message("unsubscribed", sub.job_id));
        }
    }
}

awaitable<bool> Connection::write_next() {
    const std::string message = std::move(queue_.front());
    queue_.pop_front();
    write_deadline_.expires_after(ctx_.config.write_timeout);
    write_deadline_.async_wait([this](error_code expired) {
        error_code ignored;
        if (!expired) ws_.next_layer().close(ignored);
    });
    error_code ec;
    co_await ws_.async_write(asio::buffer(message), asio::redirect_error(asio::use_awaitable, ec));
    write_deadline_.cancel();
    queued_bytes_ -= message.size();
    co_return !ec;
}

awaitable<void> Connection::send_loop() {
    // Write what is queued first, then read back what a subscription lacks (only while nothing
    // waits to be written: a replay goes at the client's pace), else sleep until woken.
    bool usable = true;
    for (;;) {
        retired_.clear();
        if (ctx_.stopping)
            close_with(static_cast<std::uint16_t>(websocket::close_code::going_away), "server shutting down");
        if (closing_ || peer_gone_) break;
        if (!queue_.empty()) {
            usable = co_await write_next();
            if (!usable) break;
        } else if (!dirty_.empty()) {
            Subscription& sub = *dirty_.front();
            dirty_.pop_front();
            sub.dirty = false;
            co_await catch_up(sub);
        } else {
            co_await wait_for(waker_, SENDER_NAP);
        }
    }
    error_code ec;
    if (closing_ && usable && !peer_gone_) {
        const websocket::close_reason reason(static_cast<websocket::close_code>(closing_->code),
                                             beast::string_view(closing_->reason.data(), closing_->reason.size()));
        co_await ws_.async_close(reason, asio::redirect_error(asio::use_awaitable, ec));
    }
    // Whatever ended the sender, the reader's read must end too.
    ws_.next_layer().close(ec);
}

websocket::stream_base::timeout timeouts(const ApiConfig& config) {
    websocket::stream_base::timeout t;
    t.handshake_timeout = config.write_timeout;  // Beast's name for the close handshake's limit too
    t.idle_timeout = config.ws_idle_timeout;
    t.keep_alive_pings = true;  // a ping at half the idle timeout: a live peer answers it
    return t;
}

}  // namespace

awaitable<void> serve_websocket(ShardContext& ctx, Sessions::Ref& ref, tcp::socket socket, WebSocketOpen open) {
    WsStream ws(std::move(socket));
    ref.socket = &ws.next_layer();
    ws.set_option(timeouts(ctx.config));
    ws.read_message_max(ctx.config.ws_max_message_bytes);
    ws.auto_fragment(false);  // a message goes out as one frame, one write, whatever its size
    ws.text(true);
    error_code ec;
    {
        const HttpRequest upgrade = std::move(open.request);  // not kept past the handshake
        co_await ws.async_accept(upgrade, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) co_return;
    Connection connection(ctx, ws, open);
    ref.farewell = &connection.waker();
    bool sending = true;
    Waiter sender_done(ctx.ioc);
    asio::co_spawn(ctx.ioc, connection.send_loop(),
                   [&sending, &sender_done, logged = log_failure("websocket sender")](std::exception_ptr e) {
        logged(e);
        sending = false;
        sender_done.wake();
    });
    co_await connection.read_loop();
    while (sending) co_await wait_for(sender_done, SENDER_NAP);
    ref.farewell = nullptr;
}

}  // namespace sluice::api
