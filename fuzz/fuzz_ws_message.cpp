// libFuzzer target: a WebSocket client's message (GET /v1/ws) as the api reads it. Whatever the
// bytes, parse_client_message answers a value (never throws or crashes); an accepted message
// has a known op and a last_seq within MAX_EVENT_ID, and the answers built from it (an
// acknowledgement, or an error naming its job) are JSON objects that read back.
#include "ws_messages.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>

using namespace sluice::api;

namespace {

void must_be_object(const std::string& text) {
    if (!json::parse(text, nullptr, false).is_object()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const Checked<ClientMessage> checked = parse_client_message(text);
    if (const auto* error = std::get_if<ApiError>(&checked)) {
        if (error->code != "invalid_json" && error->code != "invalid_request") std::abort();
        must_be_object(ws_error_message("", *error));
        return 0;
    }
    const ClientMessage& message = std::get<ClientMessage>(checked);
    if (message.last_seq > MAX_EVENT_ID) std::abort();
    if (message.op != ClientMessage::Op::SUBSCRIBE && message.last_seq != 0) std::abort();
    must_be_object(ws_ack_message("subscribed", message.job_id));
    must_be_object(ws_error_message(message.job_id, job_not_found(message.job_id)));
    return 0;
}
