// The broker link on the shard's loop: DEALER + ZMQ_FD (see broker_link.hpp).
#include "broker_link.hpp"

#include "errors.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "wire.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

namespace sluice::api {
namespace {

// Shortest time between two replacements of the socket: a broker that is down costs at most one
// new socket (and connection attempt) a second, however many requests find it down.
constexpr std::chrono::seconds REOPEN_INTERVAL{1};
// ZMTP heartbeats on the DEALER: a PING a second, and the connection dropped after 3 s without
// a word from the broker. About the lease (2 s), so a paused leader's connection is gone by the
// time a standby has taken over.
constexpr int HEARTBEAT_IVL_MS = 1000;
constexpr int HEARTBEAT_TIMEOUT_MS = 3000;

}  // namespace

using boost::system::error_code;

BrokerLink::BrokerLink(asio::io_context& ioc, zmq::context_t& zmq_ctx, std::vector<std::string> endpoints,
                       std::optional<curve::ClientKeys> keys)
    : ioc_(ioc), zmq_ctx_(zmq_ctx), endpoints_(std::move(endpoints)), keys_(std::move(keys)) {}

BrokerLink::~BrokerLink() { stop(); }

namespace {

proto::Reply error_reply(const errors::Code& code, std::uint64_t req_id, std::string message) {
    proto::Reply reply;
    reply.req_id = req_id;
    reply.status = code.status;
    reply.code = code.name;
    reply.message = std::move(message);
    return reply;
}

}  // namespace

proto::Reply BrokerLink::unavailable(std::uint64_t req_id, std::string message) {
    return error_reply(errors::BROKER_UNAVAILABLE, req_id, std::move(message));
}

proto::Reply BrokerLink::unanswered(std::uint64_t req_id, std::string message) {
    return error_reply(errors::OUTCOME_UNKNOWN, req_id, std::move(message));
}

void BrokerLink::start() {
    open_socket();
    asio::co_spawn(ioc_, read_loop(), asio::detached);
}

void BrokerLink::open_socket() {
    dealer_.emplace(zmq_ctx_, zmq::socket_type::dealer);
    dealer_->set(zmq::sockopt::linger, 0);
    // No broker connected -> send fails at once. With CURVE a connection counts only once its
    // handshake is done, so a process squatting on the port without the broker's secret key
    // never gets a message: the api answers 503.
    dealer_->set(zmq::sockopt::immediate, 1);
    if (keys_) curve::make_client(*dealer_, *keys_);
    // It receives only REPLYs, a few hundred bytes: libzmq refuses a bigger frame unallocated.
    dealer_->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(limits::FRAME_HEADROOM));
    dealer_->set(zmq::sockopt::heartbeat_ivl, HEARTBEAT_IVL_MS);
    dealer_->set(zmq::sockopt::heartbeat_timeout, HEARTBEAT_TIMEOUT_MS);
    for (const std::string& endpoint : endpoints_) dealer_->connect(endpoint);
    signal_fd_.emplace(ioc_, dealer_->get(zmq::sockopt::fd));
    opened_at_ = Clock::now();
}

void BrokerLink::stop() {
    stopping_ = true;
    close_socket();
}

bool BrokerLink::wait_connected(Clock::time_point deadline) {
    // With ZMQ_IMMEDIATE the DEALER is writable only once a connection has finished its handshake.
    for (auto now = Clock::now(); now < deadline; now = Clock::now()) {
        zmq::pollitem_t item{dealer_->handle(), 0, ZMQ_POLLOUT, 0};
        zmq::poll(&item, 1, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
        if (item.revents & ZMQ_POLLOUT) return true;
    }
    return false;
}

// read_loop() wakes up (operation_aborted) and goes on waiting on whichever socket is open then.
void BrokerLink::close_socket() {
    if (signal_fd_) {
        error_code ec;
        signal_fd_->cancel(ec);
        (void)signal_fd_->release();
        signal_fd_.reset();
    }
    dealer_.reset();
}

// ZMQ_FD is edge-like: it turns readable when the socket's events may have changed, and stays
// quiet until everything waiting has been read. So: read all that is there, then wait.
awaitable<void> BrokerLink::read_loop() {
    while (!stopping_) {
        read_replies();
        error_code ec;
        co_await signal_fd_->async_wait(asio::posix::stream_descriptor::wait_read,
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (ec && ec != asio::error::operation_aborted) {
            log::error("broker link: waiting on the socket failed: {}", ec.message());
            co_return;
        }
    }
}

void BrokerLink::read_replies() {
    read_posted_ = false;
    while (dealer_ && !stopping_ && (dealer_->get(zmq::sockopt::events) & ZMQ_POLLIN)) {
        auto received = proto::try_recv(*dealer_, /*routed=*/false);
        if (!received) break;
        if (!received->envelope) {
            log::warn("broker link: dropped a malformed message: {}", received->error);
            continue;
        }
        const auto& env = *received->envelope;
        if (env.command != static_cast<std::uint8_t>(proto::Command::REPLY)) {
            log::warn("broker link: dropped unexpected command {}", proto::command_name(env.command));
            continue;
        }
        auto reply = proto::decode_body<proto::Reply>(env.body);
        if (!reply) {
            log::warn("broker link: dropped a REPLY whose body does not decode");
            continue;
        }
        on_reply(std::move(*reply));
    }
}

std::shared_ptr<BrokerLink::Pending> BrokerLink::send_encoded(std::uint64_t req_id,
                                                               proto::Command command,
                                                               std::string body) {
    auto pending = std::make_shared<Pending>(ioc_);
    pending->req_id = req_id;
    if (!dealer_ || stopping_ || !proto::send_frames(*dealer_, {}, command, body)) {
        pending->reply = unavailable(req_id, "broker is not connected");
        if (dealer_ && !stopping_ && Clock::now() - opened_at_ >= REOPEN_INTERVAL) {
            log::debug("broker link: no broker connected; connecting a new socket");
            close_socket();
            open_socket();
        }
        return pending;
    }
    pending_.emplace(req_id, pending);
    // A send can consume the ZMQ_FD signal of a REPLY that arrived meanwhile: look once more,
    // after this turn of the loop (one look for all the sends of the turn).
    if (!read_posted_) {
        read_posted_ = true;
        asio::post(ioc_, [this] { read_replies(); });
    }
    return pending;
}

awaitable<proto::Reply> BrokerLink::wait(std::shared_ptr<Pending> pending,
                                         Clock::time_point deadline) {
    if (!pending->reply) co_await woken_or_timeout(pending->waiter, deadline - Clock::now());
    pending_.erase(pending->req_id);
    if (!pending->reply) co_return unanswered(pending->req_id, "broker did not answer in time");
    co_return std::move(*pending->reply);
}

void BrokerLink::on_reply(proto::Reply reply) {
    auto it = pending_.find(reply.req_id);
    if (it == pending_.end()) {
        log::debug("broker link: dropped a late REPLY for req_id {}", reply.req_id);
        return;
    }
    auto pending = std::move(it->second);
    pending_.erase(it);
    pending->reply = std::move(reply);
    pending->waiter.wake();
}

void BrokerLink::cancel_all() {
    stopping_ = true;  // refuse new requests, and end read_loop so the loop can finish
    if (signal_fd_) {
        error_code ec;
        signal_fd_->cancel(ec);
    }
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) {
        p->reply = unanswered(id, "api is shutting down");
        p->waiter.wake();
    }
}

}  // namespace sluice::api
