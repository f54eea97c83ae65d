// What one turn of the broker loop gathers for its batch scripts: one struct per SUBMIT, job
// start and RESULT. Each gives its script's fields (scripts::*_STRIDE of them, in the order the
// script reads them) through take_args(), which moves the big ones (input, result) out; the
// rest stays for the script's callback. Not thread-safe: the broker loop thread owns them.
#pragma once

#include "job_queue.hpp"
#include "scripts.hpp"

#include <array>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

namespace sluice::broker {

// A SUBMIT waiting for its batch to be stored (scripts::SUBMIT).
struct SubmitItem {
    static constexpr std::size_t STRIDE = scripts::SUBMIT_STRIDE;

    std::string peer;  // the api instance to answer
    std::uint64_t req_id = 0;
    std::string job_id;
    std::string tenant;
    std::string type;
    std::string input;
    int priority = 0;
    std::uint32_t max_attempts = 0;
    std::uint32_t timeout_s = 0;
    std::int64_t enqueued_ms = 0;
    std::string idempotency_key;  // the whole Redis key; empty for none
    std::string request_hash;
    std::string key_id;
    std::string concurrency_key;  // empty for none
    std::uint32_t concurrency_limit = 0;
    std::uint32_t disconnect_grace_ms = 0;  // 0: the job runs whether followed or not
    std::uint64_t run_at_ms = 0;     // 0: now
    std::uint64_t expire_at_ms = 0;  // 0: never

    // Whether the job waits in the schedule rather than in its queue, when stored at `now_ms`
    // (as scripts::SUBMIT decides).
    bool scheduled(std::int64_t now_ms) const { return run_at_ms > static_cast<std::uint64_t>(now_ms); }

    std::string webhook_url;     // empty for none
    std::string webhook_events;  // comma-joined
    std::string traceparent;     // empty for none
    std::uint32_t cache_ttl_s = 0;  // 0: no cache
    bool dedupe = false;            // join an identical queued or running job
    // A flow (scripts::SUBMIT): a child names its parent and its on_failure; a parent lists its
    // children, whose items follow it in the batch. Only the parent's request is answered.
    std::string parent{};      // empty for none
    std::string children{};    // comma-joined ids; empty for none
    std::string on_failure{};  // empty for none
    bool answer = true;      // false: a flow's child, answered with its parent

    // Moves input, idempotency key, request hash, key id, the webhook and the traceparent out;
    // job_id, tenant, type and the concurrency key stay.
    std::array<std::string, STRIDE> take_args() {
        return {job_id, tenant, type, std::move(input), std::to_string(priority),
                std::to_string(max_attempts), std::to_string(timeout_s),
                queue_score_arg(priority, enqueued_ms), std::move(idempotency_key),
                std::move(request_hash), std::move(key_id), concurrency_key, std::to_string(concurrency_limit),
                std::to_string(disconnect_grace_ms), std::to_string(run_at_ms), std::to_string(expire_at_ms),
                std::move(webhook_url), std::move(webhook_events), std::move(traceparent), std::to_string(cache_ttl_s),
                parent, children, on_failure, dedupe ? "1" : "0"};
    }
};

// A job handed to a worker in this turn, waiting for its START to be stored (scripts::START).
struct StartItem {
    static constexpr std::size_t STRIDE = scripts::START_STRIDE;

    std::string identity;  // the worker's routing id
    std::string worker_name;
    std::string type;
    std::string job_id;
    int priority = 0;
    Owner owner;
    std::int64_t enqueued_ms = 0;  // when it was queued: kept should it go back

    // Moves the worker's name out.
    std::array<std::string, STRIDE> take_args() { return {job_id, std::move(worker_name), type}; }
};

// A RESULT of the running attempt, waiting for its batch to be stored (scripts::SUCCEED).
struct ResultItem {
    static constexpr std::size_t STRIDE = scripts::SUCCEED_STRIDE;

    std::string job_id;
    std::uint32_t attempt = 0;
    std::string result;
    std::string type;    // for the metrics and the queue report's last minute
    std::string tenant;

    // Moves the result out.
    std::array<std::string, STRIDE> take_args() { return {job_id, std::to_string(attempt), std::move(result)}; }
};

// The ARGV of a batch script: its settings (now_ms first), then each item's take_args() in
// order.
template <class Item>
std::vector<std::string> batch_args(std::initializer_list<std::int64_t> settings, std::vector<Item>& items) {
    std::vector<std::string> args;
    args.reserve(settings.size() + Item::STRIDE * items.size());
    for (std::int64_t setting : settings) args.push_back(std::to_string(setting));
    for (Item& item : items) {
        auto fields = item.take_args();
        std::move(fields.begin(), fields.end(), std::back_inserter(args));
    }
    return args;
}

}  // namespace sluice::broker
