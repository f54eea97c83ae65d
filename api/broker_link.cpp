// Bridge thread and loop-side bookkeeping of the broker link (see broker_link.hpp).
#include "broker_link.hpp"

#include "log.hpp"
#include "wire.hpp"

#include <boost/asio/post.hpp>

#include <cstring>

namespace sluice::api {
namespace {
// How often the bridge thread looks at its stop flag when nothing arrives.
constexpr auto BRIDGE_POLL = std::chrono::milliseconds(100);
}  // namespace

BrokerLink::BrokerLink(asio::io_context& ioc, zmq::context_t& zmq_ctx, std::string endpoint,
                       int shard)
    : ioc_(ioc),
      zmq_ctx_(zmq_ctx),
      endpoint_(std::move(endpoint)),
      inproc_endpoint_("inproc://sluice-api-bridge-" + std::to_string(shard)) {}

BrokerLink::~BrokerLink() { stop(); }

proto::Reply BrokerLink::unavailable(std::uint64_t req_id, std::string message) {
    proto::Reply reply;
    reply.req_id = req_id;
    reply.status = 503;
    reply.code = "broker_unavailable";
    reply.message = std::move(message);
    return reply;
}

void BrokerLink::start() {
    bridge_side_.emplace(zmq_ctx_, zmq::socket_type::pair);
    bridge_side_->set(zmq::sockopt::linger, 0);
    bridge_side_->bind(inproc_endpoint_);
    loop_side_.emplace(zmq_ctx_, zmq::socket_type::pair);
    loop_side_->set(zmq::sockopt::linger, 0);
    loop_side_->connect(inproc_endpoint_);
    dealer_.emplace(zmq_ctx_, zmq::socket_type::dealer);
    dealer_->set(zmq::sockopt::linger, 0);
    dealer_->set(zmq::sockopt::immediate, 1);  // no broker connected -> send fails at once
    dealer_->connect(endpoint_);
    // The bridge thread owns bridge_side_ and dealer_ from here on (thread start is the
    // memory barrier ZMQ asks for when a socket changes threads).
    bridge_ = std::thread([this] { bridge_loop(); });
}

void BrokerLink::stop() {
    stopping_ = true;
    if (bridge_.joinable()) bridge_.join();
    dealer_.reset();
    bridge_side_.reset();
    loop_side_.reset();
}

// Bridge loop, until stop():
//   1. wait until the inproc PAIR or the DEALER has a message (or BRIDGE_POLL passes);
//   2. forward each request from the loop to the broker; one the DEALER refuses (no broker
//      connected) is answered 503 right away;
//   3. post each REPLY from the broker to the loop's io_context.
void BrokerLink::bridge_loop() {
    zmq::pollitem_t items[] = {{bridge_side_->handle(), 0, ZMQ_POLLIN, 0},
                               {dealer_->handle(), 0, ZMQ_POLLIN, 0}};
    while (!stopping_) {
        try {
            zmq::poll(items, 2, BRIDGE_POLL);
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            log::error("broker link: poll failed: {}", e.what());
            return;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            for (;;) {
                std::vector<zmq::message_t> frames;
                zmq::message_t frame;
                if (!bridge_side_->recv(frame, zmq::recv_flags::dontwait)) break;
                frames.push_back(std::move(frame));
                while (frames.back().more()) {
                    zmq::message_t next;
                    (void)bridge_side_->recv(next, zmq::recv_flags::none);
                    frames.push_back(std::move(next));
                }
                if (frames.size() != 3 || frames[0].size() != sizeof(std::uint64_t) ||
                    frames[1].size() != 1)
                    continue;  // cannot happen: only send_encoded writes here
                std::uint64_t req_id = 0;
                std::memcpy(&req_id, frames[0].data(), sizeof req_id);
                const auto command = static_cast<proto::Command>(*frames[1].data<std::uint8_t>());
                if (!proto::send_frames(*dealer_, {}, command, frames[2].to_string_view())) {
                    asio::post(ioc_, [this, req_id] {
                        on_reply(unavailable(req_id, "broker is not connected"));
                    });
                }
            }
        }
        if (items[1].revents & ZMQ_POLLIN) {
            while (auto received = proto::try_recv(*dealer_, /*routed=*/false)) {
                if (!received->envelope) {
                    log::warn("broker link: dropped a malformed message: {}", received->error);
                    continue;
                }
                const auto& env = *received->envelope;
                if (env.command != static_cast<std::uint8_t>(proto::Command::REPLY)) {
                    log::warn("broker link: dropped unexpected command {}",
                              proto::command_name(env.command));
                    continue;
                }
                auto reply = proto::decode_body<proto::Reply>(env.body);
                if (!reply) {
                    log::warn("broker link: dropped a REPLY whose body does not decode");
                    continue;
                }
                asio::post(ioc_, [this, r = std::move(*reply)]() mutable { on_reply(std::move(r)); });
            }
        }
    }
}

std::shared_ptr<BrokerLink::Pending> BrokerLink::send_encoded(std::uint64_t req_id,
                                                               proto::Command command,
                                                               std::string body) {
    auto pending = std::make_shared<Pending>(ioc_);
    pending->req_id = req_id;
    const auto id = static_cast<std::uint8_t>(command);
    bool handed_over = false;
    if (loop_side_ && !stopping_) {
        try {
            handed_over =
                loop_side_->send(zmq::buffer(&req_id, sizeof req_id),
                                 zmq::send_flags::sndmore | zmq::send_flags::dontwait)
                    .has_value();
            if (handed_over) {
                (void)loop_side_->send(zmq::buffer(&id, 1), zmq::send_flags::sndmore);
                (void)loop_side_->send(zmq::buffer(body), zmq::send_flags::none);
            }
        } catch (const zmq::error_t& e) {
            log::warn("broker link: cannot hand a request to the bridge: {}", e.what());
            handed_over = false;
        }
    }
    if (!handed_over) {
        pending->reply = unavailable(req_id, "broker link is busy or stopped");
        return pending;
    }
    pending_.emplace(req_id, pending);
    return pending;
}

awaitable<proto::Reply> BrokerLink::wait(std::shared_ptr<Pending> pending,
                                         Clock::time_point deadline) {
    while (!pending->reply && Clock::now() < deadline)
        co_await wait_for(pending->waiter, deadline - Clock::now());
    pending_.erase(pending->req_id);
    if (!pending->reply) co_return unavailable(pending->req_id, "broker did not answer in time");
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
    stopping_ = true;  // refuse new requests too, and let the bridge thread wind down
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) {
        p->reply = unavailable(id, "api is shutting down");
        p->waiter.wake();
    }
}

}  // namespace sluice::api
