// The messages of GET /v1/ws (api/ws_messages.hpp): what a client may send, and that an event
// message carries exactly the members of the SSE data.
#include "ws_messages.hpp"

#include <doctest/doctest.h>

using namespace sluice::api;

namespace {

constexpr std::string_view ID = "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10";

ClientMessage parsed(std::string_view text) {
    auto result = parse_client_message(text);
    REQUIRE(std::holds_alternative<ClientMessage>(result));
    return std::get<ClientMessage>(result);
}

ApiError refused(std::string_view text) {
    auto result = parse_client_message(text);
    REQUIRE(std::holds_alternative<ApiError>(result));
    return std::get<ApiError>(result);
}

}  // namespace

TEST_CASE("client messages: subscribe with or without last_seq, unsubscribe, cancel") {
    const ClientMessage subscribe = parsed(R"({"op": "subscribe", "job_id": "j1", "last_seq": 7})");
    CHECK(subscribe.op == ClientMessage::Op::SUBSCRIBE);
    CHECK(subscribe.job_id == "j1");
    CHECK(subscribe.last_seq == 7);
    CHECK(parsed(R"({"op": "subscribe", "job_id": "j1"})").last_seq == 0);
    CHECK(parsed(R"({"op": "unsubscribe", "job_id": "j2"})").op == ClientMessage::Op::UNSUBSCRIBE);
    CHECK(parsed(R"({"job_id": "j3", "op": "cancel", "extra": true})").op == ClientMessage::Op::CANCEL);
    CHECK(parsed(R"({"op": "subscribe", "job_id": "j1", "last_seq": 4611686018427387904})").last_seq == MAX_EVENT_ID);
}

TEST_CASE("client messages that are refused, each with the code and the member that is wrong") {
    for (const char* text : {"", "{", "[]", "\"subscribe\"", "null"}) {
        CAPTURE(text);
        CHECK(refused(text).code == "invalid_json");
    }
    CHECK(refused(R"({"job_id": "j"})").message == "op is required");
    CHECK(refused(R"({"op": "dance", "job_id": "j"})").message == "op must be 'subscribe', 'unsubscribe' or 'cancel'");
    CHECK(refused(R"({"op": 1, "job_id": "j"})").code == "invalid_request");
    CHECK(refused(R"({"op": "cancel"})").message == "job_id is required and must be a string");
    CHECK(refused(R"({"op": "cancel", "job_id": ["j"]})").code == "invalid_request");
    for (const char* last : {"-1", "1.5", "\"3\"", "null", "4611686018427387905"}) {
        CAPTURE(last);
        const ApiError error = refused(std::string(R"({"op": "subscribe", "job_id": "j", "last_seq": )") + last + "}");
        CHECK(error.message == "last_seq must be a non-negative integer");
        CHECK(error.status == 422);
    }
}

TEST_CASE("an event message is the SSE data with op: event") {
    EventEntry done{"9-1", {{"event", "succeeded"}, {"seq", "9"}, {"ts", "1700000000400"}, {"attempt", "2"}}};
    const std::string sse = format_sse_event(ID, done);
    const json data = json::parse(sse.substr(sse.find("data: ") + 6));
    json message = json::parse(ws_event_message(ID, done));
    CHECK(message["op"] == "event");
    message.erase("op");
    CHECK(message == data);
}

TEST_CASE("acknowledgements and errors") {
    CHECK(ws_ack_message("subscribed", ID) == R"({"op":"subscribed","job_id":")" + std::string(ID) + "\"}");
    CHECK(json::parse(ws_error_message("", api_error(sluice::errors::INVALID_JSON, "bad"))) ==
          json{{"op", "error"}, {"job_id", nullptr}, {"code", "invalid_json"}, {"message", "bad"}});
    // An HTTP route's refusal reads the same over the WebSocket.
    const std::string missing = "no job with id " + std::string(ID);
    CHECK(json::parse(ws_error_message(ID, job_not_found(ID))) ==
          json{{"op", "error"}, {"job_id", ID}, {"code", "job_not_found"}, {"message", missing}});
}
