// Three-frame envelope on top of cppzmq (see wire.hpp).
#include "wire.hpp"

#include <vector>

namespace sluice::proto {

std::optional<Received> try_recv(zmq::socket_t& socket, bool routed) {
    std::vector<zmq::message_t> frames;
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return std::nullopt;
    frames.push_back(std::move(frame));
    while (frames.back().more()) {
        zmq::message_t next;
        // The rest of a multipart message is already here once its first frame arrived.
        (void)socket.recv(next, zmq::recv_flags::none);
        frames.push_back(std::move(next));
    }

    Received received;
    const std::size_t expected = routed ? 4 : 3;
    if (frames.size() != expected) {
        received.error = "expected " + std::to_string(expected) + " frames, got " +
                         std::to_string(frames.size());
        return received;
    }
    std::size_t i = 0;
    Envelope env;
    if (routed) env.identity = frames[i++].to_string();
    if (frames[i].to_string_view() != SIGNATURE) {
        received.error = "bad signature or version";
        return received;
    }
    const zmq::message_t& command = frames[i + 1];
    if (command.size() != 1 ||
        command_name(*static_cast<const std::uint8_t*>(command.data())) == nullptr) {
        received.error = "unknown command";
        return received;
    }
    env.command = *static_cast<const std::uint8_t*>(command.data());
    env.body = frames[i + 2].to_string();
    received.envelope = std::move(env);
    return received;
}

bool send_frames(zmq::socket_t& socket, std::string_view identity, Command command,
                 std::string_view body) {
    const auto id = static_cast<std::uint8_t>(command);
    try {
        if (!identity.empty() &&
            !socket.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
            return false;
        if (!socket.send(zmq::buffer(SIGNATURE), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
            return false;
        (void)socket.send(zmq::buffer(&id, 1), zmq::send_flags::sndmore);
        (void)socket.send(zmq::buffer(body), zmq::send_flags::none);
        return true;
    } catch (const zmq::error_t&) {
        // EHOSTUNREACH on a ROUTER with ROUTER_MANDATORY: the peer is gone.
        return false;
    }
}

}  // namespace sluice::proto
