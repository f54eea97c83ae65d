// Flows: FLOW from the api, SPAWN from a worker, and the SETTLE step that moves parents on as
// their children end (see broker.hpp, broker/flow_scripts.hpp and README.md, "Flows").
#include "broker.hpp"

#include "flow_scripts.hpp"
#include "job_id.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "names.hpp"

#include <fmt/ranges.h>

namespace sluice::broker {
namespace {

// While a flow is unsettled, SETTLE runs this often: a parent starts at most this long after
// its last child ended, and an idle SETTLE costs Redis a few microseconds.
constexpr std::chrono::milliseconds FLOW_SETTLE_INTERVAL{20};
// Parents settled per SETTLE call; a fuller list goes on in the next turn.
constexpr std::size_t SETTLE_BATCH = 200;

bool valid_on_failure(const std::string& text) { return text == "fail_parent" || text == "ignore"; }

}  // namespace

void Broker::handle_flow(const std::string& peer, const proto::Flow& msg) {
    auto parent = proto::decode_body<proto::Submit>(std::string_view(msg.parent.data(), msg.parent.size()));
    if (!parent) return refuse(peer, msg.req_id, errors::INVALID_REQUEST, "the flow's parent is not a SUBMIT body");
    if (msg.children.empty() || msg.children.size() > limits::MAX_FLOW_CHILDREN ||
        msg.on_failure.size() != msg.children.size())
        return refuse(peer, msg.req_id, errors::INVALID_REQUEST,
                      fmt::format("a flow has 1..{} children, each with its on_failure", limits::MAX_FLOW_CHILDREN));
    parent->req_id = msg.req_id;
    std::vector<proto::Submit> children;
    for (std::size_t i = 0; i < msg.children.size(); ++i) {
        auto child = proto::decode_body<proto::Submit>(std::string_view(msg.children[i].data(), msg.children[i].size()));
        if (!child) return refuse(peer, msg.req_id, errors::INVALID_REQUEST, fmt::format("child {} is not a SUBMIT body", i));
        if (!valid_on_failure(msg.on_failure[i]))
            return refuse(peer, msg.req_id, errors::INVALID_REQUEST,
                          fmt::format("child {}: on_failure must be fail_parent or ignore", i));
        children.push_back(std::move(*child));
    }
    // Every job is checked as a SUBMIT, and all belong to the parent's tenant and API key: a
    // flow is one request. Options that would put a job outside the flow's life (a schedule,
    // a deadline, a cached answer, joining another job, its own idempotency key) are the api's
    // to refuse, and refused here too.
    for (std::size_t i = 0; i <= children.size(); ++i) {
        const proto::Submit& job = i == 0 ? *parent : children[i - 1];
        const std::string which = i == 0 ? "parent" : fmt::format("child {}", i - 1);
        if (auto problem = submit_problem(job))
            return refuse(peer, msg.req_id, errors::INVALID_REQUEST, which + ": " + *problem);
        if (job.tenant != parent->tenant || job.key_id != parent->key_id)
            return refuse(peer, msg.req_id, errors::INVALID_REQUEST, which + ": not the parent's tenant and key");
        if (job.run_at_ms != 0 || job.expire_at_ms != 0 || job.cache_ttl_s != 0 || job.dedupe ||
            (i > 0 && !job.idempotency_key.empty()))
            return refuse(peer, msg.req_id, errors::INVALID_REQUEST,
                          which + ": a flow's jobs take no schedule, deadline, cache, dedupe or own idempotency key");
        if (auto refused = admission_refusal(job, i))
            return refuse(peer, msg.req_id, refused->first, which + ": " + refused->second);
    }
    if (parent->submits_per_s > 0) {
        const std::string owner = parent->key_id.empty() ? "tenant " + parent->tenant : parent->key_id;
        const auto taken = submit_limits_.take(owner, parent->submits_per_s, Clock::now());
        if (!taken.ok)
            return send_reply(peer, proto::Reply{msg.req_id, static_cast<std::uint32_t>(errors::RATE_LIMITED.status),
                                                 std::string(errors::RATE_LIMITED.name),
                                                 fmt::format("past this key's limit of {} submits a second",
                                                             parent->submits_per_s),
                                                 "", "", static_cast<std::uint32_t>(taken.retry_after.count())});
    }
    std::vector<std::string> ids;
    for (const proto::Submit& child : children) ids.push_back(child.job_id);
    const std::string parent_id = parent->job_id;
    submits_.push_back(submit_item(peer, std::move(*parent)));
    submits_.back().children = fmt::format("{}", fmt::join(ids, ","));
    for (std::size_t i = 0; i < children.size(); ++i) {
        submits_.push_back(submit_item(peer, std::move(children[i])));
        submits_.back().parent = parent_id;
        submits_.back().on_failure = msg.on_failure[i];
        submits_.back().answer = false;
    }
}

void Broker::handle_spawn(const std::string& peer, const proto::Spawn& msg) {
    const Attempt* held = jobs_.current(peer, msg.job_id, msg.attempt);
    if (held == nullptr) return drop_stale("SPAWN", msg.job_id, msg.attempt);
    if (budgets_.holding()) settle_tokens(msg.job_id, held->type, msg.prompt_tokens, msg.completion_tokens);
    // What is wrong with the children, if anything: the handler asked for what cannot run, and
    // running it again would ask for the same, so the job fails for good.
    std::string problem;
    if (msg.types.empty() || msg.types.size() > limits::MAX_FLOW_CHILDREN || msg.inputs.size() != msg.types.size() ||
        msg.on_failure.size() != msg.types.size())
        problem = fmt::format("spawned {} children: a job spawns 1..{}, each with an input and an on_failure",
                              msg.types.size(), limits::MAX_FLOW_CHILDREN);
    for (std::size_t i = 0; problem.empty() && i < msg.types.size(); ++i) {
        if (!valid_job_type(msg.types[i]))
            problem = fmt::format("spawned child {}: its type is not a job type name", i);
        else if (known_types_.count(msg.types[i]) == 0)
            problem = fmt::format("spawned child {} of job type '{}', which no worker has declared", i, msg.types[i]);
        else if (msg.inputs[i].size() > config_.max_input_bytes)
            problem = fmt::format("spawned child {} with an input too large ({} bytes, limit {})", i, msg.inputs[i].size(),
                                  config_.max_input_bytes);
        else if (!valid_on_failure(msg.on_failure[i]))
            problem = fmt::format("spawned child {}: on_failure must be fail_parent or ignore", i);
    }
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!problem.empty()) return fail_job(msg.job_id, *run, problem, "failed", false);

    std::vector<std::string> args = {std::to_string(now_ms()), std::to_string(config_.events_maxlen),
                                     std::to_string(config_.tenant_max_bytes), msg.job_id, std::to_string(msg.attempt)};
    std::vector<std::pair<std::string, std::string>> children;  // id, type
    for (std::size_t i = 0; i < msg.types.size(); ++i) {
        children.emplace_back(make_job_id(), msg.types[i]);
        args.insert(args.end(), {children.back().first, msg.types[i],
                                 std::string(msg.inputs[i].begin(), msg.inputs[i].end()), msg.on_failure[i]});
    }
    const bool sent = eval(scripts::SPAWN, {}, std::move(args), [this, id = msg.job_id, run = *run, children](redisReply* r) {
        const std::string outcome = r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements >= 1
                                        ? reply_text(r->element[0]) : "";
        if (outcome == "ok" && r->elements == 3) {
            const std::string tenant = reply_text(r->element[1]);
            const int priority = static_cast<int>(r->element[2]->integer);
            for (const auto& [child, type] : children)
                queues_.push(type, child, priority, Owner{tenant, "", 0}, now_ms());
            ++flows_live_;
            log::info("job {} attempt {} spawned {} child(ren): waiting for them", id, run.attempt, children.size());
        } else if (outcome == "over_budget") {
            fail_job(id, run, fmt::format("its children would pass tenant '{}''s byte budget (SLUICE_TENANT_MAX_BYTES)",
                                          run.owner.tenant), "failed", true);
        } else if (outcome == "stale") {
            drop_stale("SPAWN", id, run.attempt);
        } else {
            // Not stored: the job is still running in Redis, and the resync after Redis comes
            // back runs it again, as for a RESULT.
            log::error("spawn of job {} not stored: {}", id, reply_error(r));
        }
    });
    if (!sent) log::error("spawn of job {} not sent: Redis is unreachable", msg.job_id);
}

void Broker::settle_flows(Clock::time_point now) {
    if (flows_live_ == 0 || settling_ || now < next_settle_) return;
    settling_ = true;
    const bool sent = eval(scripts::SETTLE, {},
                           {std::to_string(now_ms()), std::to_string(config_.events_maxlen),
                            std::to_string(config_.job_ttl_s), std::to_string(SETTLE_BATCH)},
                           [this](redisReply* r) {
        settling_ = false;
        next_settle_ = Clock::now() + FLOW_SETTLE_INTERVAL;
        if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
            (r->elements - 2) % scripts::SETTLE_STRIDE != 0) {
            if (r != nullptr) log::error("settling flows failed: {}", reply_error(r));
            return;
        }
        flows_live_ = static_cast<std::size_t>(r->element[0]->integer);
        if (r->element[1]->integer > 0) next_settle_ = Clock::now();  // more are due
        for (std::size_t i = 2; i < r->elements; i += scripts::SETTLE_STRIDE) {
            const redisReply* const* action = r->element + i;
            const std::string what = reply_text(action[0]), id = reply_text(action[1]);
            if (what == "queued") {
                const std::string type = reply_text(action[2]);
                queues_.push(type, id, static_cast<int>(action[3]->integer), owner_of(action + 4), now_ms());
                log::info("job {} ({}): its children have ended, queued", id, type);
            } else if (forget_canceled(id, reply_text(action[2]))) {
                log::info("job {} canceled (was {}): its flow ended", id, reply_text(action[2]));
            }
        }
    });
    if (!sent) settling_ = false;
}

proto::Bytes Broker::encode_children(const redisReply* outcomes) {
    constexpr std::size_t PER_CHILD = 5;
    proto::Bytes bytes;
    if (outcomes == nullptr || outcomes->type != REDIS_REPLY_ARRAY || outcomes->elements == 0) return bytes;
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> out(buffer);
    out.pack_array(static_cast<std::uint32_t>(outcomes->elements / PER_CHILD));
    for (std::size_t i = 0; i + PER_CHILD <= outcomes->elements; i += PER_CHILD) {
        const redisReply* const* child = outcomes->element + i;
        out.pack_map(5);
        for (auto [key, k] : {std::pair{"id", 0}, {"type", 1}, {"status", 2}}) {
            out.pack(key);
            out.pack(reply_text(child[k]));
        }
        out.pack("result");
        // The result as stored is one msgpack value: it goes in as that value, not re-encoded.
        if (child[3]->len > 0) buffer.write(child[3]->str, child[3]->len);
        else out.pack_nil();
        out.pack("error");
        out.pack(reply_text(child[4]));
    }
    bytes.assign(buffer.data(), buffer.data() + buffer.size());
    return bytes;
}

}  // namespace sluice::broker
