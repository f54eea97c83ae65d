// The worker side of the broker: READY, job reports (events, RESULT in batches, FAILURE,
// CANCELED), lost workers, and dispatch of queued jobs against worker credit (see broker.hpp
// and schemas/PROTOCOL.md).
#include "broker.hpp"

#include "limits.hpp"
#include "log.hpp"
#include "names.hpp"
#include "scripts.hpp"
#include "trace_context.hpp"
#include "utf8.hpp"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

namespace sluice::broker {
namespace {


}  // namespace

void Broker::handle_backend(const proto::Envelope& env) {
    const auto command = static_cast<proto::Command>(env.command);
    const std::string& peer = env.identity;
    if (command == proto::Command::READY) {
        if (auto msg = proto::decode_body<proto::Ready>(env.body)) return handle_ready(peer, *msg);
        dropped_.warn("messages with a malformed body from the backend", Clock::now(),
                      "backend: dropped READY with a malformed body");
        return;
    }
    WorkerInfo* worker = workers_.find(peer);
    if (worker == nullptr) {
        // Not (or no longer) registered, e.g. after a broker restart: make it say READY again.
        if (command != proto::Command::DISCONNECT)
            proto::send(backend_, proto::Disconnect{}, peer);
        return;
    }
    worker->last_recv = Clock::now();
    bool ok = true;
    switch (command) {
        case proto::Command::HEARTBEAT:
            break;
        case proto::Command::PROGRESS:
            if (auto msg = proto::decode_body<proto::Progress>(env.body)) {
                if (event_too_large("PROGRESS message", *msg, msg->message)) break;
                const double fraction = std::isfinite(msg->fraction) ? std::clamp(msg->fraction, 0.0, 1.0) : 0.0;
                handle_event(peer, msg->job_id, msg->attempt,
                             {"event", "progress", "fraction", fmt::format("{}", fraction), "message", msg->message});
            } else ok = false;
            break;
        case proto::Command::CHUNK:
            if (auto msg = proto::decode_body<proto::Chunk>(env.body)) {
                if (event_too_large("CHUNK", *msg, msg->data)) break;
                handle_event(peer, msg->job_id, msg->attempt, {"event", "chunk", "data", msg->data});
            } else ok = false;
            break;
        case proto::Command::RESULT:
            if (auto msg = proto::decode_body<proto::Result>(env.body)) handle_result(peer, std::move(*msg));
            else ok = false;
            break;
        case proto::Command::FAILURE:
            if (auto msg = proto::decode_body<proto::Failure>(env.body)) handle_failure(peer, *msg);
            else ok = false;
            break;
        case proto::Command::RATE_LIMITED:
            if (auto msg = proto::decode_body<proto::RateLimited>(env.body)) handle_rate_limited(peer, *msg);
            else ok = false;
            break;
        case proto::Command::CANCELED:
            if (auto msg = proto::decode_body<proto::Canceled>(env.body)) handle_canceled(peer, *msg);
            else ok = false;
            break;
        case proto::Command::SPAWN:
            if (auto msg = proto::decode_body<proto::Spawn>(env.body)) handle_spawn(peer, *msg);
            else ok = false;
            break;
        case proto::Command::DISCONNECT:
            // A worker shutting down gracefully: it gets no new jobs, and the ones it holds
            // finish (or come back when its heartbeats stop).
            worker->leaving = true;
            log::info("worker {} is shutting down: finishing {} job(s)", worker->name, worker->jobs.size());
            break;
        default:
            dropped_.warn("malformed messages from the backend", Clock::now(), "backend: dropped {}: not a worker command",
                          proto::command_name(env.command));
    }
    if (!ok)
        dropped_.warn("messages with a malformed body from the backend", Clock::now(),
                      "backend: dropped {} with a malformed body", proto::command_name(env.command));
}

void Broker::handle_ready(const std::string& peer, const proto::Ready& msg) {
    const bool valid = !msg.types.empty() && msg.concurrency >= 1 && msg.concurrency <= limits::MAX_WORKER_CONCURRENCY &&
                       std::all_of(msg.types.begin(), msg.types.end(), [](const auto& t) { return valid_job_type(t); });
    if (!valid)
        return dropped_.warn("invalid READYs", Clock::now(),
                             "backend: dropped READY from '{}': needs 1+ valid job types and concurrency 1..{}",
                             msg.worker_name.substr(0, limits::MAX_WORKER_NAME), limits::MAX_WORKER_CONCURRENCY);
    const bool known = workers_.find(peer) != nullptr;
    WorkerInfo& worker = workers_.ready(peer, msg.worker_name.substr(0, limits::MAX_WORKER_NAME), msg.runtime.substr(0, limits::MAX_RUNTIME_NAME),
                                        msg.types, msg.concurrency, Clock::now());
    std::vector<std::string> declared;
    for (const auto& type : msg.types)
        if (known_types_.insert(type).second) declared.push_back(type);
    store_types(declared);
    store_schemas(worker.name, msg);
    declare_models(worker.name, msg);
    if (!known)
        log::info("worker {} ({}) ready: types [{}], concurrency {}", worker.name, worker.runtime,
                  fmt::join(msg.types, ", "), worker.concurrency);
}

void Broker::store_schemas(const std::string& worker, const proto::Ready& msg) {
    std::size_t total = 0;
    for (const auto& schema : msg.schemas) total += schema.size();
    if (msg.schemas.size() != msg.types.size() || total > limits::MAX_READY_SCHEMA_BYTES)
        return dropped_.warn("READYs with unusable schemas", Clock::now(),
                             "backend: ignored the input schemas of worker '{}': {} for {} type(s), {} bytes (limit {})",
                             worker, msg.schemas.size(), msg.types.size(), total, limits::MAX_READY_SCHEMA_BYTES);
    for (std::size_t i = 0; i < msg.types.size(); ++i) {
        const std::string& type = msg.types[i];
        const std::string& schema = msg.schemas[i];
        if (schema.empty()) continue;
        if (schema.size() > limits::MAX_SCHEMA_BYTES) {
            dropped_.warn("oversize input schemas", Clock::now(),
                          "backend: ignored the input schema of type {} from worker '{}': {} bytes, limit {}", type,
                          worker, schema.size(), limits::MAX_SCHEMA_BYTES);
            continue;
        }
        if (auto it = type_schemas_.find(type); it != type_schemas_.end() && it->second == schema) continue;
        type_schemas_[type] = schema;
        // Read before written, so a broker that restarts says nothing about a schema it finds
        // unchanged; the broker is the only writer of the hash.
        std::vector<std::string_view> get = {"HGET", keys::TYPE_SCHEMAS, type};
        redis_.command(get, [this, type, schema, worker](redisReply* stored) {
            if (stored != nullptr && stored->type == REDIS_REPLY_STRING && reply_text(stored) == schema) return;
            eval(scripts::CALL, {}, {"HSET", std::string(keys::TYPE_SCHEMAS), type, schema}, [this, type, worker](redisReply* r) {
                if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
                    type_schemas_.erase(type);  // the next READY tries again
                    return log::error("storing the input schema of type {} failed: {}", type, reply_error(r));
                }
                log::info("job type {}: input schema changed (declared by worker '{}')", type, worker);
            });
        });
    }
}

void Broker::drop_stale(std::string_view what, const std::string& job_id, std::uint32_t attempt) {
    dropped_.warn("stale reports from workers", Clock::now(), "dropped stale {} for job {} attempt {}", what, job_id,
                  attempt);
}

void Broker::handle_event(const std::string& peer, const std::string& job_id, std::uint32_t attempt,
                          std::vector<std::string> fields) {
    if (jobs_.current(peer, job_id, attempt) == nullptr) return drop_stale(fields[1], job_id, attempt);
    std::vector<std::string> args = {job_id, std::to_string(attempt), std::to_string(now_ms()),
                                     std::to_string(config_.events_maxlen)};
    args.insert(args.end(), std::make_move_iterator(fields.begin()), std::make_move_iterator(fields.end()));
    eval_on_job(scripts::EVENT, job_id, std::move(args), [this, job_id, attempt](redisReply* r) {
        const std::string outcome = reply_text(r);
        if (outcome == "stale") drop_stale("event", job_id, attempt);
        else if (outcome != "ok") log::error("event of job {} not stored: {}", job_id, reply_error(r));
    });
}

template <class Report>
bool Broker::event_too_large(const char* what, const Report& msg, const std::string& payload) {
    if (payload.size() <= config_.max_event_bytes) return false;
    dropped_.warn("oversize reports from workers", Clock::now(), "dropped {} for job {} attempt {}: {} bytes, limit {}",
                  what, msg.job_id, msg.attempt, payload.size(), config_.max_event_bytes);
    return true;
}

void Broker::handle_result(const std::string& peer, proto::Result msg) {
    if (budgets_.holding())
        if (const Attempt* run = jobs_.current(peer, msg.job_id, msg.attempt))
            settle_tokens(msg.job_id, run->type, msg.prompt_tokens, msg.completion_tokens);
    if (msg.result.size() > config_.max_result_bytes) {
        // Running it again would make the same result: the job fails for good, saying why.
        auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
        if (!run) return drop_stale("RESULT", msg.job_id, msg.attempt);
        return fail_job(msg.job_id, *run,
                        fmt::format("result too large ({} bytes, limit {})", msg.result.size(), config_.max_result_bytes),
                        "failed", false);
    }
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!run) return drop_stale("RESULT", msg.job_id, msg.attempt);
    results_.push_back(ResultItem{std::move(msg.job_id), msg.attempt, std::string(msg.result.begin(), msg.result.end()),
                                  run->type, run->owner.tenant});

}

void Broker::flush_results() {
    if (results_.empty()) return;
    std::vector<std::string> args = batch_args({now_ms(), config_.events_maxlen, config_.job_ttl_s}, results_);
    auto batch = std::make_shared<std::vector<ResultItem>>(std::move(results_));
    results_.clear();
    // A result that cannot be stored is not lost for good: the job stays running in Redis and
    // the resync after Redis comes back runs it again.
    eval(scripts::SUCCEED, {}, std::move(args), [this, batch](redisReply* r) {
        if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != batch->size()) {
            log::error("results of {} job(s) not stored: {}", batch->size(), reply_error(r));
            return;
        }
        for (std::size_t i = 0; i < batch->size(); ++i) {
            const ResultItem& job = (*batch)[i];
            if (reply_text(r->element[i]) == "stale") {
                drop_stale("RESULT", job.job_id, job.attempt);
            } else {
                record_outcome(job.type, job.tenant, true);
                metrics_.count(job.type, BrokerMetrics::SUCCEEDED);
            }
        }
    });
}

void Broker::handle_failure(const std::string& peer, const proto::Failure& msg) {
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!run) return drop_stale("FAILURE", msg.job_id, msg.attempt);
    settle_tokens(msg.job_id, run->type, msg.prompt_tokens, msg.completion_tokens);
    // Cut here, before it is logged or stored: a worker need not keep to the limit.
    fail_job(msg.job_id, *run, std::string(utf8_prefix(msg.error, limits::MAX_ERROR_BYTES)), "failed", msg.retryable);
}

void Broker::handle_canceled(const std::string& peer, const proto::Canceled& msg) {
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!run) return drop_stale("CANCELED", msg.job_id, msg.attempt);
    // A worker that cancels a job nobody asked it to cancel (its shutdown grace ran out)
    // did not finish it: the job runs again.
    fail_job(msg.job_id, *run, "canceled by the worker", "lost", true);
}

void Broker::fail_job(const std::string& job_id, const Attempt& run, const std::string& error,
                      const char* outcome, bool retryable, std::optional<std::chrono::milliseconds> wait) {
    // An attempt that ends without saying what it used keeps its estimate spent.
    budgets_.forget(job_id);
    const std::int64_t delay = wait ? wait->count() : jobs_.backoff(run.attempt).count();
    const std::int64_t now = now_ms();
    eval_on_job(scripts::FAIL, job_id,
         {job_id, std::to_string(run.attempt), std::to_string(now), std::to_string(config_.events_maxlen),
          std::to_string(config_.job_ttl_s), error, outcome, retryable ? "1" : "0",
          queue_score_arg(run.priority, now + delay), std::to_string(config_.max_redeliveries),
          std::to_string(config_.max_rate_limited)},
         [this, job_id, run, error, delay, lost = std::string_view(outcome) == "lost"](redisReply* r) {
             const std::string outcome = reply_text(r);
             if (lost && (outcome == "requeued" || outcome == "failed")) metrics_.count(run.type, BrokerMetrics::LOST);
             if (outcome == "requeued") {
                 metrics_.count(run.type, BrokerMetrics::RETRIED);
                 log::info("job {} attempt {} failed ({}): retrying in {} ms", job_id, run.attempt, error, delay);
                 jobs_.delay(Clock::now() + std::chrono::milliseconds(delay),
                             Delayed{job_id, run.type, run.priority, run.owner});
             } else if (outcome == "failed") {
                 metrics_.count(run.type, BrokerMetrics::FAILED);
                 log::info("job {} failed after attempt {}: {}", job_id, run.attempt, error);
                 record_outcome(run.type, run.owner.tenant, false);
             } else if (outcome == "stale") {
                 drop_stale("FAILURE", job_id, run.attempt);
             } else {
                 log::error("failure of job {} not stored: {}", job_id, reply_error(r));
             }
         });
}

void Broker::lose_workers(std::vector<WorkerInfo> gone, const char* why) {
    for (const WorkerInfo& worker : gone) {
        log::warn("worker {} {}: {} job(s) it held go back to their queues", worker.name, why, worker.jobs.size());
        for (const Ended& lost : jobs_.lose(worker))
            fail_job(lost.job_id, lost.run, fmt::format("worker {} {}", worker.name, why), "lost", true);
    }
}

void Broker::send_to_worker(WorkerInfo& worker, proto::Command command, const std::string& body) {
    if (!proto::send_frames(backend_, worker.identity, command, body))
        log::warn("worker {} unreachable: {} not sent", worker.name, proto::command_name(static_cast<std::uint8_t>(command)));
    worker.last_send = Clock::now();
}

// ---- dispatch ----------------------------------------------------------------------------

void Broker::dispatch() {
    for (const KeyRef& key : jobs_.take_freed_keys()) queues_.wake(key);
    if (sync_ != Sync::DONE || !redis_.connected()) return;
    const auto now = Clock::now();
    const std::int64_t wall_ms = budgets_.any() ? now_ms() : 0;
    for (const std::string& type : queues_.nonempty_types()) {
        // A type whose workers declared no model costs one lookup; one with a model, a lookup
        // more per tenant passed over while budgets are set.
        const TokenEstimator* estimator = estimator_of(type);
        if (estimator != nullptr && budgets_.paused(estimator->model, now)) continue;
        JobQueues::Admit admit;
        // The input is read by the start: until then a job is reserved the type's last prompt.
        std::uint64_t estimate = 0;
        std::uint64_t padding = 0;
        if (estimator != nullptr && budgets_.any()) {
            padding = shortfall_[type];
            estimate = estimator->max_tokens + typical_prompt_[type] + padding;
            admit = [this, estimator, estimate, wall_ms](const std::string& tenant) {
                return budgets_.admits(tenant, estimator->model, estimate, wall_ms);
            };
        }
        while (WorkerInfo* worker = workers_.pick(type)) {
            auto next = queues_.pop(type, jobs_.counts(), admit);
            if (!next) break;
            if (admit)
                store_spend(budgets_.reserve(next->job_id, next->owner.tenant, estimator->model, estimate, padding, wall_ms));
            start_job(*worker, type, std::move(*next));
        }
    }
    flush_starts();
}

void Broker::start_job(WorkerInfo& worker, const std::string& type, JobQueues::Popped job) {
    jobs_.assign(worker, job.job_id, type, job.priority, job.owner);
    starts_.push_back(StartItem{worker.identity, worker.name, type, std::move(job.job_id), job.priority,
                                std::move(job.owner), job.enqueued_ms});
}

void Broker::flush_starts() {
    if (starts_.empty()) return;
    std::vector<std::string> args =
        batch_args({now_ms(), config_.events_maxlen, LEASE_GRACE.count(), config_.job_ttl_s}, starts_);
    auto batch = std::make_shared<std::vector<StartItem>>(std::move(starts_));
    starts_.clear();
    const bool sent = eval(scripts::START, {}, std::move(args), [this, batch](redisReply* r) {
        const bool ok = r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == batch->size();
        if (!ok) log::error("start of {} job(s) failed: {}", batch->size(), reply_error(r));
        for (std::size_t i = 0; i < batch->size(); ++i)
            started((*batch)[i], ok ? r->element[i] : nullptr);
    });
    if (!sent)
        for (const StartItem& job : *batch) started(job, nullptr);
}

void Broker::started(const StartItem& job, const redisReply* r) {
    const bool stored = r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements >= 1;
    if (!stored || reply_text(r->element[0]) != "ok" || r->elements < 4) {
        jobs_.unassign(job.job_id, job.identity);
        // Not started: whatever was reserved for it is given back.
        store_spend(budgets_.settle(job.job_id, 0, true));
        // Not started for want of Redis: the job is still queued there, so here too. Otherwise
        // it was canceled meanwhile, or was past its deadline and has failed, expired.
        if (!stored) queues_.push(job.type, job.job_id, job.priority, job.owner, job.enqueued_ms);
        else if (reply_text(r->element[0]) == "expired") {
            log::info("job {} expired before it started", job.job_id);
            record_outcome(job.type, job.owner.tenant, false);
        }
        return;
    }
    const auto attempt = static_cast<std::uint32_t>(r->element[1]->integer);
    const redisReply* input = r->element[2];
    const auto timeout_s = static_cast<std::uint32_t>(r->element[3]->integer);
    WorkerInfo* worker = workers_.find(job.identity);
    const auto lease_deadline = Clock::now() + std::chrono::seconds(timeout_s) + LEASE_GRACE;
    if (worker == nullptr || !jobs_.started(job.job_id, job.identity, attempt, lease_deadline)) {
        // The worker vanished while Redis recorded the start.
        jobs_.unassign(job.job_id, job.identity);
        return fail_job(job.job_id, Attempt{job.identity, job.type, job.priority, job.owner, attempt}, "worker lost",
                        "lost", true);
    }
    correct_estimate(job.job_id, job.type, std::string_view(input->str, input->len));
    proto::Job msg{job.job_id, job.type, proto::Bytes(input->str, input->str + input->len), attempt, timeout_s,
                   dispatch_span(job, *worker, attempt, r->elements >= 5 ? reply_text(r->element[4]) : ""),
                   encode_children(r->elements >= 6 ? r->element[5] : nullptr)};
    // A worker takes no frame past SLUICE_MAX_INPUT_BYTES (and 64 KiB): a flow's parent whose
    // children's results do not fit could never run.
    if (msg.input.size() + msg.children.size() > config_.max_input_bytes) {
        jobs_.finish(job.identity, job.job_id, attempt);
        return fail_job(job.job_id, Attempt{job.identity, job.type, job.priority, job.owner, attempt},
                        fmt::format("its input and its children's results are too large for a worker ({} bytes, "
                                    "limit {}: SLUICE_MAX_INPUT_BYTES)",
                                    msg.input.size() + msg.children.size(), config_.max_input_bytes),
                        "failed", false);
    }
    metrics_.count(job.type, BrokerMetrics::STARTED);
    metrics_.queue_waited(job.type, now_ms() - job.enqueued_ms);
    send_to_worker(*worker, proto::Command::JOB, proto::encode_body(msg));
}

std::string Broker::dispatch_span(const StartItem& job, const WorkerInfo& worker, std::uint32_t attempt,
                                  const std::string& traceparent) {
    if (!spans_) return traceparent;
    const std::optional<trace::TraceContext> parent = trace::parse_traceparent(traceparent);
    if (!parent || !parent->sampled) return traceparent;
    const trace::TraceContext context = trace::child_of(parent);
    trace::Span span;
    span.trace_id = context.trace_id;
    span.span_id = context.span_id;
    span.parent_span_id = parent->span_id;
    span.name = "dispatch " + job.type;
    span.start_ns = job.enqueued_ms * 1'000'000;
    span.end_ns = trace::unix_now_ns();
    span.attributes = {{"sluice.job.id", job.job_id}, {"sluice.job.type", job.type}, {"sluice.worker", worker.name},
                       {"sluice.tenant", job.owner.tenant}};
    span.int_attributes = {{"sluice.job.attempt", attempt}};
    spans_->add(std::move(span));
    return trace::format_traceparent(context);
}

}  // namespace sluice::broker
