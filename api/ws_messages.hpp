// The messages of GET /v1/ws (README.md, "WebSocket"): what a client may send (subscribe,
// unsubscribe, cancel; JSON text) and what the api sends back (events with the same members as
// an SSE message's data, acknowledgements, errors with the stable codes of common/errors.hpp).
// Pure: no sockets, no Redis; tests/unit/test_ws_messages.cpp drives it. Thread-safe.
#pragma once

#include "http_wire.hpp"
#include "job_json.hpp"
#include "request.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::api {

// One message a client sent.
struct ClientMessage {
    enum class Op { SUBSCRIBE, UNSUBSCRIBE, CANCEL };
    Op op = Op::SUBSCRIBE;
    std::string job_id;
    std::uint64_t last_seq = 0;  // subscribe: the last event the client has (as Last-Event-ID)
};

// Reads a client's message: {"op": "subscribe", "job_id": str, "last_seq"?: int >= 0},
// {"op": "unsubscribe", "job_id": str} or {"op": "cancel", "job_id": str}. Error 400
// invalid_json (not JSON, or not an object), 422 invalid_request naming the member that is
// missing or wrong (an unknown op included). The job id is not checked for its shape here: an
// id that is no job's is job_not_found, as on every route.
Checked<ClientMessage> parse_client_message(std::string_view text);

// {"op": "event", ...}: the members of write_event_members(), as an SSE message's data has them.
std::string ws_event_message(std::string_view job_id, const EventEntry& entry);

// {"op": op, "job_id": job_id}: "subscribed", "unsubscribed", "canceled".
std::string ws_ack_message(std::string_view op, std::string_view job_id);

// {"op": "error", "job_id": job_id or null when "", "code", "message"}.
std::string ws_error_message(std::string_view job_id, const ApiError& error);

// The same for an HTTP route's error answer (its body, {"error": {"code", "message"}}), so a
// refusal reads alike over HTTP and WebSocket.
std::string ws_error_message(std::string_view job_id, const HttpResult& refused);

}  // namespace sluice::api
