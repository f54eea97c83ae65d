// WebSocket connections (GET /v1/ws, README.md "WebSocket"): one connection follows many jobs.
// The session hands over its stream once a route accepted the upgrade; from then on the
// connection runs two coroutines: the reader takes the client's messages (subscribe,
// unsubscribe, cancel) one at a time, the sender writes the send queue and replays what a
// subscription has not seen yet from Redis. Events that come with their notice go straight
// into the send queue; past its bound in bytes the connection is closed with WS_CLOSE_SLOW
// (the client resumes with last_seq). Loop thread only.
#pragma once

#include "auth.hpp"
#include "http_session.hpp"
#include "shard_context.hpp"

#include <cstdint>
#include <string>

namespace sluice::api {

// The close code of a connection whose send queue overflowed: the client did not take its
// events fast enough (RFC 6455 leaves 4000-4999 to applications).
inline constexpr std::uint16_t WS_CLOSE_SLOW = 4000;

// A WebSocket upgrade its route accepted: who the connection acts as.
struct WebSocketOpen {
    Principal principal;
    std::string token_job;  // a read token's job, the only one the connection may follow; "": any
    HttpRequest request;    // the upgrade request, set by the session (the route leaves it empty)
};

// Accepts the upgrade on `socket` and serves the WebSocket until it closes, `ref` pointing at
// its socket meanwhile so shutdown reaches it (shutdown sends 1001 going away).
awaitable<void> serve_websocket(ShardContext& ctx, Sessions::Ref& ref, tcp::socket socket, WebSocketOpen open);

}  // namespace sluice::api
