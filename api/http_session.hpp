// HTTP/1.1 connections of one shard: the read loop (read a request, answer it through the
// routes, repeat while keep-alive), writing answers, opening an SSE stream and handing the
// bare socket to event_stream.hpp, handing an upgraded connection to ws_session.hpp, the 503 (or 429) for connections past a limit, and the
// registry shutdown uses to reach every open connection. Loop thread only, except the counts
// (connection_counts.hpp), which are shared by every shard.
#pragma once

#include "connection_counts.hpp"
#include "loop.hpp"
#include "shard_context.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <unordered_set>

namespace sluice::api {

using tcp = asio::ip::tcp;

// The open connections of one shard, and their count across all shards.
class Sessions {
public:
    // A connection as the shard sees it, so shutdown can reach it.
    struct Ref {
        tcp::socket* socket = nullptr;  // the connection, wherever it lives at the moment
        bool idle = false;              // waiting for the next request: safe to close at once
        Wakeable* farewell = nullptr;   // a WebSocket's: woken at shutdown to send its close frame
    };

    // `connections` counts open connections across all shards, against their limits.
    explicit Sessions(ConnectionCounts& connections) : connections_(connections) {}

    // Counts a new connection from `client` in `ticket`, unless a limit refuses it.
    ConnectionCounts::Admission admit(const ClientKey& client, ConnectionCounts::Ticket& ticket) {
        return connections_.admit(client, ticket);
    }
    // Counts a new connection from a trusted reverse proxy, unless the total refuses it.
    ConnectionCounts::Admission admit_proxy(ConnectionCounts::Ticket& ticket) { return connections_.admit_proxy(ticket); }
    // Connections past a limit get a 503 or 429; this many may be in the middle of getting it
    // per shard, beyond that they are closed without an answer.
    bool may_reject() const { return rejecting_ < MAX_REJECTING; }

    // Shutdown: stops the connections waiting for a request (the others finish theirs) and
    // tells WebSockets to close.
    void close_idle();
    // Shutdown, past the grace period: closes every connection.
    void close_all();
    bool empty() const { return open_.empty(); }

    // Registers an admitted connection for as long as it lives.
    class Slot {
    public:
        Slot(Sessions& sessions, Ref* ref) : sessions_(sessions), ref_(ref) { sessions_.open_.insert(ref_); }
        ~Slot() { sessions_.open_.erase(ref_); }
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;

    private:
        Sessions& sessions_;
        Ref* ref_;
    };

    // Counts a connection being refused for as long as it lives (see may_reject()).
    class Rejecting {
    public:
        explicit Rejecting(Sessions& sessions) : sessions_(sessions) { ++sessions_.rejecting_; }
        ~Rejecting() { --sessions_.rejecting_; }
        Rejecting(const Rejecting&) = delete;
        Rejecting& operator=(const Rejecting&) = delete;

    private:
        Sessions& sessions_;
    };

private:
    static constexpr int MAX_REJECTING = 64;

    ConnectionCounts& connections_;
    std::unordered_set<Ref*> open_;
    int rejecting_ = 0;
};

// Serves one admitted connection until it closes (Sessions::admit() counted it in `ticket`;
// the count is released with it).
awaitable<void> serve_connection(ShardContext& ctx, Sessions& sessions, tcp::socket socket,
                                 ConnectionCounts::Ticket ticket);

// Answers a connection `admission` refused, with Retry-After, and closes it: 503
// too_many_connections (the server is full) or 429 too_many_connections_from_client.
awaitable<void> reject_connection(Sessions& sessions, tcp::socket socket, ConnectionCounts::Admission admission);

}  // namespace sluice::api
