// POST /v1/flows: the body checked and made a FLOW; the answer from the REPLY (see
// flow_request.hpp).
#include "flow_request.hpp"

#include <utility>

namespace sluice::api {
namespace {

ApiError within(std::string_view where, ApiError error) {
    error.message = std::string(where) + ": " + error.message;
    return error;
}

}  // namespace

Checked<FlowRequest> parse_flow(std::string_view body, std::string (*make_id)(),
                                std::optional<std::string_view> idempotency_key, std::size_t max_input_bytes,
                                std::int64_t now_ms, const std::vector<webhooks::Net>& webhook_allow_nets) {
    if (idempotency_key) {
        if (auto e = check_idempotency_key(*idempotency_key)) return *e;
    }
    auto parsed = parse_json_object(body);
    if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
    json& doc = std::get<json>(parsed);
    for (const auto& item : doc.items())
        if (item.key() != "parent" && item.key() != "children")
            return api_error(errors::INVALID_REQUEST, item.key() + " is not a flow field (parent, children)");
    auto parent = doc.find("parent");
    auto children = doc.find("children");
    if (parent == doc.end() || !parent->is_object())
        return api_error(errors::INVALID_REQUEST, "parent is required: a job object, as POST /v1/jobs takes");
    if (children == doc.end() || !children->is_array() || children->empty() ||
        children->size() > limits::MAX_FLOW_CHILDREN)
        return api_error(errors::INVALID_REQUEST, "children is required: an array of 1 to " +
                                                      std::to_string(limits::MAX_FLOW_CHILDREN) + " job objects");
    FlowRequest flow;
    // One shared bound for every input together: a FLOW is one message to the broker, and the
    // parent's run carries its children's results.
    std::size_t total_input = 0;
    json canonical = json::array({"sluice.flow.v1"});
    for (std::size_t i = 0; i <= children->size(); ++i) {
        const std::string where = i == 0 ? "parent" : "children[" + std::to_string(i - 1) + "]";
        json& job = i == 0 ? *parent : (*children)[i - 1];
        std::string on_failure = "fail_parent";
        if (i > 0 && job.is_object()) {
            if (auto given = job.find("on_failure"); given != job.end()) {
                if (!given->is_string() || (*given != "fail_parent" && *given != "ignore"))
                    return api_error(errors::INVALID_REQUEST, where + ".on_failure must be \"fail_parent\" or \"ignore\"");
                on_failure = given->get<std::string>();
                job.erase(given);
            }
        }
        if (job.is_object())
            if (auto options = job.find("options"); options != job.end() && options->is_object())
                for (const char* name : {"delay_s", "run_at", "expire_after_s", "cache_ttl_s", "dedupe"})
                    if (options->contains(name))
                        return api_error(errors::INVALID_REQUEST,
                                         where + ".options." + name + " is not allowed in a flow: its jobs run when "
                                                 "the flow lets them");
        json input;
        json timing = json::object();
        auto submit = parse_job(job, make_id(), max_input_bytes, now_ms, &input, webhook_allow_nets, &timing);
        if (auto* error = std::get_if<ApiError>(&submit)) return within(where, std::move(*error));
        proto::Submit& checked = std::get<proto::Submit>(submit);
        total_input += checked.input.size();
        if (total_input > max_input_bytes)
            return api_error(errors::INPUT_TOO_LARGE, "the flow's inputs are " + std::to_string(total_input) +
                                                          " bytes or more as msgpack together; the limit is " +
                                                          std::to_string(max_input_bytes) + " bytes");
        canonical.push_back(request_hash(checked, timing));
        canonical.push_back(on_failure);
        flow.inputs.push_back(std::move(input));
        if (i == 0) {
            flow.parent = std::move(checked);
        } else {
            flow.children.push_back(std::move(checked));
            flow.on_failure.push_back(std::move(on_failure));
        }
    }
    if (idempotency_key) {
        flow.parent.idempotency_key = std::string(*idempotency_key);
        flow.parent.request_hash = sha256_hex(json::to_msgpack(canonical));
    }
    return flow;
}

proto::Flow flow_message(const FlowRequest& flow) {
    proto::Flow msg;
    const std::string parent = proto::encode_body(flow.parent);
    msg.parent.assign(parent.begin(), parent.end());
    for (const proto::Submit& child : flow.children) {
        const std::string body = proto::encode_body(child);
        msg.children.emplace_back(body.begin(), body.end());
    }
    msg.on_failure = flow.on_failure;
    return msg;
}

HttpResult flow_result(const FlowRequest& flow, const proto::Reply& reply, std::string_view token_secret,
                       std::int64_t token_expires_s) {
    HttpResult result = submit_result(flow.parent, reply, token_secret, token_expires_s);
    if (result.status != 202 || reply.status != 202) return result;
    json body = json::parse(result.body);
    json children = json::array();
    for (std::size_t i = 0; i < flow.children.size(); ++i)
        children.push_back({{"id", flow.children[i].job_id},
                            {"type", flow.children[i].type},
                            {"on_failure", flow.on_failure[i]}});
    body["children"] = std::move(children);
    result.body = body.dump();
    return result;
}

}  // namespace sluice::api
