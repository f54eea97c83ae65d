// POST /v1/flows, the pure part: the body checked and turned into a FLOW (a parent job that
// waits for its children; README.md, "Flows"), and the answer made from the broker's REPLY.
// No sockets, no Redis: tests/unit/test_flow_request.cpp drives it. Thread-safe.
#pragma once

#include "request.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::api {

// A checked flow. `inputs` holds each job's input as parsed (the parent first), for the input
// schema check; `on_failure` is parallel to `children`.
struct FlowRequest {
    proto::Submit parent;
    std::vector<proto::Submit> children;
    std::vector<std::string> on_failure;
    std::vector<json> inputs;
};

// Validates a POST /v1/flows body, {"parent": job, "children": [job, ...]}, each job a POST
// /v1/jobs body, a child with an optional "on_failure" ("fail_parent", the default, or
// "ignore"). New job ids come from `make_id`. With an `idempotency_key` the parent carries it,
// and a request hash of the whole flow. A flow's jobs take no options.delay_s, run_at,
// expire_after_s or cache_ttl_s: each runs when its flow lets it.
// Errors: 400 invalid_json, 422 invalid_request (naming "parent" or "children[i]" and the
// field), 413 input_too_large, and parse_job()'s.
Checked<FlowRequest> parse_flow(std::string_view body, std::string (*make_id)(),
                                std::optional<std::string_view> idempotency_key = std::nullopt,
                                std::size_t max_input_bytes = limits::DEFAULT_MAX_INPUT,
                                std::int64_t now_ms = wall_now_ms(),
                                const std::vector<webhooks::Net>& webhook_allow_nets = {});

// The FLOW message of a checked flow (tenant, key and trace already set on every job).
proto::Flow flow_message(const FlowRequest& flow);

// HTTP answer to a FLOW, from the broker's REPLY: submit_result() for the parent (202, status
// waiting_children), plus "children": [{"id", "type", "on_failure"}, ...] when the flow was
// stored now (not for an idempotent replay: GET the parent for its children).
HttpResult flow_result(const FlowRequest& flow, const proto::Reply& reply, std::string_view token_secret,
                       std::int64_t token_expires_s);

}  // namespace sluice::api
