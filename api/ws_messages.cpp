// The messages of GET /v1/ws (see ws_messages.hpp).
#include "ws_messages.hpp"

namespace sluice::api {
namespace {

ApiError invalid(std::string message) { return api_error(errors::INVALID_REQUEST, std::move(message)); }

std::optional<ClientMessage::Op> parse_op(const json& op) {
    if (!op.is_string()) return std::nullopt;
    const auto& name = op.get_ref<const std::string&>();
    if (name == "subscribe") return ClientMessage::Op::SUBSCRIBE;
    if (name == "unsubscribe") return ClientMessage::Op::UNSUBSCRIBE;
    if (name == "cancel") return ClientMessage::Op::CANCEL;
    return std::nullopt;
}

}  // namespace

Checked<ClientMessage> parse_client_message(std::string_view text) {
    const json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
        return api_error(errors::INVALID_JSON, "a message must be a JSON object");
    ClientMessage message;
    const auto op = doc.find("op");
    if (op == doc.end()) return invalid("op is required");
    const auto parsed = parse_op(*op);
    if (!parsed) return invalid("op must be 'subscribe', 'unsubscribe' or 'cancel'");
    message.op = *parsed;
    const auto job_id = doc.find("job_id");
    if (job_id == doc.end() || !job_id->is_string()) return invalid("job_id is required and must be a string");
    message.job_id = job_id->get<std::string>();
    const auto last_seq = doc.find("last_seq");
    if (last_seq != doc.end() && message.op == ClientMessage::Op::SUBSCRIBE) {
        if (!last_seq->is_number_unsigned() || last_seq->get<std::uint64_t>() > MAX_EVENT_ID)
            return invalid("last_seq must be a non-negative integer");
        message.last_seq = last_seq->get<std::uint64_t>();
    }
    return message;
}

std::string ws_event_message(std::string_view job_id, const EventEntry& entry) {
    JsonWriter w;
    w.begin_object().key("op").string("event");
    write_event_members(w, job_id, entry);
    w.end_object();
    return w.take();
}

std::string ws_ack_message(std::string_view op, std::string_view job_id) {
    JsonWriter w;
    w.begin_object().key("op").string(op).key("job_id").string(job_id).end_object();
    return w.take();
}

std::string ws_error_message(std::string_view job_id, const ApiError& error) {
    JsonWriter w;
    w.begin_object().key("op").string("error").key("job_id");
    if (job_id.empty()) {
        w.null();
    } else {
        w.string(job_id);
    }
    w.key("code").string(error.code).key("message").string(error.message).end_object();
    return w.take();
}

std::string ws_error_message(std::string_view job_id, const HttpResult& refused) {
    const json body = json::parse(refused.body, nullptr, false);
    ApiError error{refused.status, std::string(errors::INTERNAL_ERROR.name), "internal error"};
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
        error.code = body["error"].value("code", error.code);
        error.message = body["error"].value("message", error.message);
    }
    return ws_error_message(job_id, error);
}

}  // namespace sluice::api
