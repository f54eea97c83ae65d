// Sending and receiving SLUICE/1 messages on ZMQ sockets: the three-frame envelope of
// schemas/PROTOCOL.md. A socket is not thread-safe; call these only from the thread that owns it.
#pragma once

#include "protocol.hpp"

#include <zmq.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace sluice::proto {

// One message as it came off the socket. `identity` is empty on a DEALER.
struct Envelope {
    std::string identity;
    std::uint8_t command = 0;
    std::string body;
};

// What try_recv found: an envelope, or the reason the message broke the framing rules.
struct Received {
    std::optional<Envelope> envelope;
    std::string error;
};

// Reads one whole multipart message if one is waiting; returns nullopt when none is.
// `routed` is true for a ROUTER (an identity frame comes first). Never blocks.
std::optional<Received> try_recv(zmq::socket_t& socket, bool routed);

// Sends the raw frames of one message; `identity` is required on a ROUTER and empty otherwise.
// Returns false when the message could not be queued right now (no peer, high-water mark).
bool send_frames(zmq::socket_t& socket, std::string_view identity, Command command,
                 std::string_view body);

// Encodes and sends `msg`; same result as send_frames.
template <class T>
bool send(zmq::socket_t& socket, const T& msg, std::string_view identity = {}) {
    return send_frames(socket, identity, T::command, encode_body(msg));
}

}  // namespace sluice::proto
