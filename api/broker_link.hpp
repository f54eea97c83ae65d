// The link from one api shard to the broker: a DEALER owned by the shard's loop thread. Requests
// go out with a non-blocking send; the loop waits on the socket's ZMQ_FD (readable whenever
// the socket's events may have changed) and, when woken, reads every waiting REPLY and wakes
// the coroutine awaiting it. No extra thread, so no hand-over between threads per request.
// Late replies (after the awaiting coroutine gave up) are dropped. A send that finds no broker
// connected replaces the socket (at most once per REOPEN_INTERVAL): libzmq stops retrying an
// endpoint for good once a handshake fails with a protocol error, as it does against a process
// without CURVE squatting on the broker's port, so a fresh socket is the way to try again.
// With a standby broker the DEALER connects to every endpoint given; only the leader binds its
// socket, and ZMQ_IMMEDIATE sends only over connections whose handshake is done, so requests go
// to the leader. ZMTP heartbeats drop a connection whose broker stopped answering (paused, or
// its host gone without a FIN), so a stalled old leader stops getting requests.
//
// Thread-safety: everything only on the shard's loop thread; start()/stop() before and after
// its loop runs.
#pragma once

#include "curve.hpp"
#include "loop.hpp"
#include "protocol.hpp"

#include <zmq.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <memory>
#include <unordered_map>

namespace sluice::api {

class BrokerLink {
public:
    // One request waiting for its REPLY.
    struct Pending {
        explicit Pending(asio::io_context& ioc) : waiter(ioc) {}
        std::uint64_t req_id = 0;
        Waiter waiter;
        std::optional<proto::Reply> reply;
    };

    // `keys`: connect as a CURVE client with them (README.md, Security); none: no CURVE.
    // `endpoints`: the leading broker's and its standbys'; the DEALER connects to all of them.
    BrokerLink(asio::io_context& ioc, zmq::context_t& zmq_ctx, std::vector<std::string> endpoints,
               std::optional<curve::ClientKeys> keys);
    ~BrokerLink();
    BrokerLink(const BrokerLink&) = delete;
    BrokerLink& operator=(const BrokerLink&) = delete;

    // Connects the DEALER and starts reading REPLYs on the loop.
    void start();
    // Closes the socket; idempotent.
    void stop();
    // Waits (blocking: before the loop runs only) until a broker is connected, its handshake
    // done, or `deadline` passes; returns whether one is.
    bool wait_connected(Clock::time_point deadline);

    // Gives `msg` a fresh req_id and sends it. The returned Pending already holds a 503
    // broker_unavailable reply if it could not be sent (no broker connected, or its queue full).
    template <class T>
    std::shared_ptr<Pending> send(T msg) {
        msg.req_id = next_req_id_++;
        return send_encoded(msg.req_id, T::command, proto::encode_body(msg));
    }

    // Waits for the REPLY of `pending` until `deadline`; on timeout returns 503
    // outcome_unknown: the request went out, so the broker may have acted on it. Always returns
    // a Reply.
    awaitable<proto::Reply> wait(std::shared_ptr<Pending> pending, Clock::time_point deadline);

    // send() + wait() with a timeout.
    template <class T>
    awaitable<proto::Reply> request(T msg, Clock::duration timeout) {
        auto pending = send(std::move(msg));
        const Clock::time_point deadline = Clock::now() + timeout;
        proto::Reply reply = co_await wait(std::move(pending), deadline);
        co_return reply;
    }

    // Wakes every waiting request with 503 outcome_unknown (shutdown).
    void cancel_all();

    // A REPLY standing for "the request never reached the broker": 503 broker_unavailable.
    static proto::Reply unavailable(std::uint64_t req_id, std::string message);
    // A REPLY standing for "the request went out but no answer came": 503 outcome_unknown.
    static proto::Reply unanswered(std::uint64_t req_id, std::string message);

private:
    std::shared_ptr<Pending> send_encoded(std::uint64_t req_id, proto::Command command,
                                          std::string body);
    // A new DEALER connecting to the broker (with CURVE if keys_), and its ZMQ_FD watched.
    void open_socket();
    void close_socket();
    void on_reply(proto::Reply reply);
    // Reads every message waiting on the DEALER.
    void read_replies();
    awaitable<void> read_loop();

    asio::io_context& ioc_;
    zmq::context_t& zmq_ctx_;
    std::vector<std::string> endpoints_;
    std::optional<curve::ClientKeys> keys_;
    std::optional<zmq::socket_t> dealer_;
    // Watches the DEALER's ZMQ_FD; released, never closed (libzmq owns that fd).
    std::optional<asio::posix::stream_descriptor> signal_fd_;
    Clock::time_point opened_at_{};
    bool stopping_ = false;
    bool read_posted_ = false;
    std::uint64_t next_req_id_ = 1;
    std::unordered_map<std::uint64_t, std::shared_ptr<Pending>> pending_;
};

}  // namespace sluice::api
