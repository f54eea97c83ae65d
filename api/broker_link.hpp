// The link from one api shard to the broker. A dedicated bridge thread owns the DEALER (the
// only socket that talks to the broker) and polls it plus an inproc PAIR; the shard's loop
// thread hands requests over that PAIR (a non-blocking send) and gets each REPLY posted back
// onto its io_context, where the coroutine awaiting it is woken. Late replies (after the
// awaiting coroutine gave up) are dropped.
//
// Thread-safety: send()/wait()/cancel_all() only on the shard's loop thread; start()/stop() on
// the thread that owns the shard (before and after its loop runs).
#pragma once

#include "loop.hpp"
#include "protocol.hpp"

#include <zmq.hpp>

#include <atomic>
#include <memory>
#include <thread>
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

    BrokerLink(asio::io_context& ioc, zmq::context_t& zmq_ctx, std::string endpoint, int shard);
    ~BrokerLink();
    BrokerLink(const BrokerLink&) = delete;
    BrokerLink& operator=(const BrokerLink&) = delete;

    // Creates the sockets and starts the bridge thread.
    void start();
    // Stops and joins the bridge thread; idempotent.
    void stop();

    // Gives `msg` a fresh req_id and hands it to the bridge. The returned Pending already holds
    // a 503 broker_unavailable reply if it could not even be handed over.
    template <class T>
    std::shared_ptr<Pending> send(T msg) {
        msg.req_id = next_req_id_++;
        return send_encoded(msg.req_id, T::command, proto::encode_body(msg));
    }

    // Waits for the REPLY of `pending` until `deadline`; on timeout returns 503
    // broker_unavailable. Always returns a Reply.
    awaitable<proto::Reply> wait(std::shared_ptr<Pending> pending, Clock::time_point deadline);

    // send() + wait() with a timeout.
    template <class T>
    awaitable<proto::Reply> request(T msg, Clock::duration timeout) {
        auto pending = send(std::move(msg));
        const Clock::time_point deadline = Clock::now() + timeout;
        proto::Reply reply = co_await wait(std::move(pending), deadline);
        co_return reply;
    }

    // Wakes every waiting request with 503 broker_unavailable (shutdown).
    void cancel_all();

    // A REPLY standing for "the broker did not answer".
    static proto::Reply unavailable(std::uint64_t req_id, std::string message);

private:
    std::shared_ptr<Pending> send_encoded(std::uint64_t req_id, proto::Command command,
                                          std::string body);
    void on_reply(proto::Reply reply);
    void bridge_loop();

    asio::io_context& ioc_;
    zmq::context_t& zmq_ctx_;
    std::string endpoint_;
    std::string inproc_endpoint_;
    std::optional<zmq::socket_t> loop_side_;    // loop thread: PAIR to the bridge
    std::optional<zmq::socket_t> bridge_side_;  // bridge thread: PAIR from the loop
    std::optional<zmq::socket_t> dealer_;       // bridge thread: DEALER to the broker
    std::thread bridge_;
    std::atomic<bool> stopping_{false};
    std::uint64_t next_req_id_ = 1;
    std::unordered_map<std::uint64_t, std::shared_ptr<Pending>> pending_;
};

}  // namespace sluice::api
