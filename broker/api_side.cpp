// The api side of the broker: SUBMIT (stored in batches, one per loop turn), CANCEL, RETRY and
// PING, each answered with a named outcome (see broker.hpp and schemas/PROTOCOL.md); and the
// cancels of jobs whose followers left (options.on_disconnect), which the apis report.
#include "broker.hpp"

#include "log.hpp"
#include "errors.hpp"
#include "keys.hpp"
#include "limits.hpp"
#include "names.hpp"
#include "scripts.hpp"
#include "submit_scripts.hpp"
#include "trace_context.hpp"
#include "webhooks.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>

namespace sluice::broker {
namespace {

// An Idempotency-Key is remembered this long (as Stripe does).
constexpr std::int64_t IDEMPOTENCY_TTL_S = 24 * 3600;
// An API key id as the api records it: 16 hex digits, or "admin" for SLUICE_ADMIN_KEY.
constexpr std::size_t MAX_KEY_ID = 32;
// Jobs nobody follows any more: looked for once a second (the apis renew a followed job's
// deadline as often), at most ABANDON_BATCH canceled per script call; a full batch means more
// are due, and the next call goes on the next turn.
constexpr std::chrono::milliseconds ABANDON_INTERVAL{1000};
constexpr std::size_t ABANDON_BATCH = 500;
// While the last WAIT found too few replicas, the next ones wait this long only: a WAIT holds
// every later command of the broker's connection (results, starts), so a lost replica must not
// hold them a whole SLUICE_REDIS_WAIT_TIMEOUT_MS each time. A replica that is back answers well
// within it even on a busy machine (a few ms), and the next WAIT gets the full timeout again.
constexpr std::chrono::milliseconds MISSING_REPLICAS_WAIT{100};

// The answer to a submit that Redis stored: 202 with the new job's state, or, for an
// Idempotency-Key seen before (`replay`), 200 naming the job it made and that job's state now;
// `joined`, the job it joined (options.dedupe), empty for none.
proto::Reply stored_reply(std::uint64_t req_id, std::string job_id, std::string state, bool replay = false,
                          std::string joined = "") {
    return proto::Reply{req_id, replay ? 200u : 202u, "", replay ? "idempotent replay" : "", std::move(job_id),
                        std::move(state), 0, false, std::move(joined)};
}

}  // namespace

void Broker::handle_frontend(const proto::Envelope& env) {
    switch (static_cast<proto::Command>(env.command)) {
        case proto::Command::SUBMIT:
            if (auto msg = proto::decode_body<proto::Submit>(env.body)) return handle_submit(env.identity, std::move(*msg));
            break;
        case proto::Command::FLOW:
            if (auto msg = proto::decode_body<proto::Flow>(env.body)) return handle_flow(env.identity, *msg);
            break;
        case proto::Command::CANCEL:
            if (auto msg = proto::decode_body<proto::Cancel>(env.body)) return handle_cancel(env.identity, *msg);
            break;
        case proto::Command::RETRY:
            if (auto msg = proto::decode_body<proto::Retry>(env.body)) return handle_retry(env.identity, *msg);
            break;
        case proto::Command::PING:
            if (auto msg = proto::decode_body<proto::Ping>(env.body)) return handle_ping(env.identity, *msg);
            break;
        default:
            dropped_.warn("malformed messages from the frontend", Clock::now(), "frontend: dropped {}: not an api command",
                          proto::command_name(env.command));
            return;
    }
    dropped_.warn("messages with a malformed body from the frontend", Clock::now(),
                  "frontend: dropped {} with a malformed body", proto::command_name(env.command));
}

void Broker::refuse_in_doubt(const proto::Envelope& env) {
    // Every api command's body starts with its req_id, and a decode ignores trailing fields:
    // read as a PING, any of them gives its req_id.
    if (auto msg = proto::decode_body<proto::Ping>(env.body))
        refuse(env.identity, msg->req_id, errors::REDIS_UNAVAILABLE,
               "the broker cannot renew its lease (Redis is out of reach or not ready): nothing was done");
}

void Broker::accept(const std::string& peer, std::uint64_t req_id, std::string job_id, std::string state) {
    send_reply(peer, proto::Reply{req_id, 200, "", "", std::move(job_id), std::move(state)});
}

void Broker::accept_cached(const std::string& peer, std::uint64_t req_id, std::string cached_id) {
    send_reply(peer, proto::Reply{req_id, 200, "", "cached", std::move(cached_id), "succeeded", 0, true});
}

void Broker::refuse(const std::string& peer, std::uint64_t req_id, const errors::Code& code, std::string message,
                    std::string job_id) {
    send_reply(peer, proto::Reply{req_id, static_cast<std::uint32_t>(code.status), std::string(code.name),
                                  std::move(message), std::move(job_id), ""});
}

void Broker::refuse_unstored(const std::string& peer, std::uint64_t req_id, const std::string& what,
                             std::string job_id) {
    if (stepping_down_)
        return refuse(peer, req_id, errors::BROKER_UNAVAILABLE,
                      what + ": this broker has lost its lease to another, nothing was stored; send it again",
                      std::move(job_id));
    refuse(peer, req_id, errors::REDIS_UNAVAILABLE, what, std::move(job_id));
}

void Broker::send_reply(const std::string& peer, proto::Reply msg) {
    if (!proto::send(frontend_, msg, peer)) log::warn("api peer gone: reply {} dropped", msg.req_id);
}

void Broker::handle_submit(const std::string& peer, proto::Submit msg) {
    if (auto problem = submit_problem(msg)) return refuse(peer, msg.req_id, errors::INVALID_REQUEST, std::move(*problem));
    if (msg.submits_per_s > 0) {
        const std::string owner = msg.key_id.empty() ? "tenant " + msg.tenant : msg.key_id;
        const auto taken = submit_limits_.take(owner, msg.submits_per_s, Clock::now());
        if (!taken.ok) {
            proto::Reply refused{msg.req_id, static_cast<std::uint32_t>(errors::RATE_LIMITED.status),
                                 std::string(errors::RATE_LIMITED.name),
                                 fmt::format("past this key's limit of {} submits a second", msg.submits_per_s), "", "",
                                 static_cast<std::uint32_t>(taken.retry_after.count())};
            return send_reply(peer, std::move(refused));
        }
    }
    if (auto refused = admission_refusal(msg)) return refuse(peer, msg.req_id, refused->first, std::move(refused->second));
    submits_.push_back(submit_item(peer, std::move(msg)));
}

std::optional<std::pair<errors::Code, std::string>> Broker::admission_refusal(const proto::Submit& msg,
                                                                             std::size_t more) {
    if (known_types_.count(msg.type) == 0)
        return std::pair{errors::UNKNOWN_JOB_TYPE, fmt::format("no worker has declared job type '{}'", msg.type)};
    if (queues_.depth(msg.type) + schedule_.of_type(msg.type) + storing_[msg.type] + more >= config_.max_queue_depth)
        return std::pair{errors::QUEUE_FULL, fmt::format("queue '{}' holds {} jobs, its limit", msg.type, config_.max_queue_depth)};
    if (tenant_queued(msg.tenant) + more >= config_.tenant_max_queued)
        return std::pair{errors::TENANT_QUEUE_FULL,
                         fmt::format("tenant '{}' has {} jobs queued, its limit (SLUICE_TENANT_MAX_QUEUED)", msg.tenant,
                                     config_.tenant_max_queued)};
    if (!redis_.connected()) return std::pair{errors::REDIS_UNAVAILABLE, std::string("Redis is unreachable")};
    if (storage_.full())
        return std::pair{errors::STORAGE_FULL, fmt::format("the job store (Redis) is {}% or more of its maxmemory; retry later",
                                                           storage_.full_percent())};
    return std::nullopt;
}

SubmitItem Broker::submit_item(const std::string& peer, proto::Submit msg) {
    ++storing_[msg.type];
    ++storing_tenants_[msg.tenant];
    std::string idempotency_key =
        msg.idempotency_key.empty() ? "" : keys::idempotency(msg.tenant, msg.idempotency_key);
    return SubmitItem{.peer = peer,
                      .req_id = msg.req_id,
                      .job_id = std::move(msg.job_id),
                      .tenant = std::move(msg.tenant),
                      .type = std::move(msg.type),
                      .input = std::string(msg.input.begin(), msg.input.end()),
                      .priority = static_cast<int>(msg.priority),
                      .max_attempts = msg.max_attempts,
                      .timeout_s = msg.timeout_s,
                      .enqueued_ms = now_ms(),
                      .idempotency_key = std::move(idempotency_key),
                      .request_hash = std::move(msg.request_hash),
                      .key_id = std::move(msg.key_id),
                      .concurrency_key = std::move(msg.concurrency_key),
                      .concurrency_limit = msg.concurrency_limit,
                      .disconnect_grace_ms = msg.disconnect_grace_ms,
                      .run_at_ms = msg.run_at_ms,
                      .expire_at_ms = msg.expire_at_ms,
                      .webhook_url = std::move(msg.webhook_url),
                      .webhook_events = fmt::format("{}", fmt::join(msg.webhook_events, ",")),
                      .traceparent = std::move(msg.traceparent),
                      .cache_ttl_s = msg.cache_ttl_s,
                      .dedupe = msg.dedupe};
}

// The same rules as the api's (common/limits.hpp, common/names.hpp), checked again because any
// peer that reaches the frontend can send a SUBMIT.
std::optional<std::string> Broker::submit_problem(const proto::Submit& msg) const {
    if (!is_uuid(msg.job_id)) return "job_id is not a UUID";
    if (!valid_job_type(msg.type)) return "type is not a job type name";
    if (!valid_tenant(msg.tenant)) return "tenant is not a tenant name";
    if (!msg.traceparent.empty() && !trace::parse_traceparent(msg.traceparent))
        return "traceparent is not a W3C traceparent";
    if (msg.key_id.size() > MAX_KEY_ID || !std::all_of(msg.key_id.begin(), msg.key_id.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c));
        }))
        return "key_id is not an API key id";
    if (msg.priority < 0 || msg.priority > MAX_PRIORITY) return fmt::format("priority must be 0..{}", MAX_PRIORITY);
    if (msg.max_attempts < limits::MAX_ATTEMPTS_MIN || msg.max_attempts > limits::MAX_ATTEMPTS_MAX)
        return fmt::format("max_attempts must be {}..{}", limits::MAX_ATTEMPTS_MIN, limits::MAX_ATTEMPTS_MAX);
    if (msg.timeout_s < limits::TIMEOUT_S_MIN || msg.timeout_s > limits::TIMEOUT_S_MAX)
        return fmt::format("timeout_s must be {}..{}", limits::TIMEOUT_S_MIN, limits::TIMEOUT_S_MAX);
    if (msg.input.size() > config_.max_input_bytes)
        return fmt::format("input too large ({} bytes, limit {})", msg.input.size(), config_.max_input_bytes);
    // With an Idempotency-Key, the request's SHA-256 in hex; without, neither.
    const bool hex_hash = msg.request_hash.size() == 64 &&
                          std::all_of(msg.request_hash.begin(), msg.request_hash.end(),
                                      [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
    if (msg.idempotency_key.empty() ? !msg.request_hash.empty()
                                    : !valid_idempotency_key(msg.idempotency_key) || !hex_hash)
        return "invalid idempotency key or request hash";
    if (!msg.concurrency_key.empty() && !valid_concurrency_key(msg.concurrency_key))
        return fmt::format("concurrency_key must be 1..{} visible ASCII characters", limits::MAX_CONCURRENCY_KEY);
    if (!valid_concurrency(msg.concurrency_key, msg.concurrency_limit))
        return msg.concurrency_key.empty() ? "concurrency_limit must be 0 without a concurrency_key"
                                           : fmt::format("concurrency_limit must be {}..{}", limits::CONCURRENCY_LIMIT_MIN,
                                                         limits::CONCURRENCY_LIMIT_MAX);
    if (msg.disconnect_grace_ms != 0 && (msg.disconnect_grace_ms < limits::DISCONNECT_GRACE_S_MIN * 1000 ||
                                         msg.disconnect_grace_ms > limits::DISCONNECT_GRACE_S_MAX * 1000))
        return fmt::format("disconnect_grace_ms must be 0 or {}..{}", limits::DISCONNECT_GRACE_S_MIN * 1000,
                           limits::DISCONNECT_GRACE_S_MAX * 1000);
    // Times are checked against this broker's clock, with slack for the api's; a run_at_ms in
    // the past is a job due now.
    const auto now = static_cast<std::uint64_t>(now_ms());
    const auto slack = static_cast<std::uint64_t>(limits::CLOCK_SLACK_MS);
    if (msg.run_at_ms > now + static_cast<std::uint64_t>(limits::MAX_SCHEDULE_AHEAD_MS) + slack)
        return "run_at_ms is more than a year ahead";
    const std::uint64_t due = std::max(msg.run_at_ms, now);
    if (msg.expire_at_ms != 0 &&
        (msg.expire_at_ms <= msg.run_at_ms ||
         msg.expire_at_ms > due + static_cast<std::uint64_t>(limits::EXPIRE_AFTER_MS_MAX) + slack))
        return "expire_at_ms must be after run_at_ms and at most a year after it";

    if (msg.cache_ttl_s > static_cast<std::uint32_t>(limits::CACHE_TTL_S_MAX))
        return fmt::format("cache_ttl_s must be at most {}", limits::CACHE_TTL_S_MAX);
    if (msg.dedupe && msg.run_at_ms > now + slack) return "dedupe joins a job due now: it does not take a run_at_ms";

    // The api parsed the URL in full (webhooks::parse_url); again here, as every field.
    if (!msg.webhook_url.empty()) {
        const auto parsed = webhooks::parse_url(msg.webhook_url);
        if (!parsed.url) return "webhook_url " + parsed.error;
    }
    if (auto problem = webhooks::events_problem(msg.webhook_url, msg.webhook_events)) return *problem;

    return std::nullopt;
}

std::size_t Broker::tenant_queued(const std::string& tenant) const {
    auto storing = storing_tenants_.find(tenant);
    return queues_.tenant_depth(tenant) + schedule_.of_tenant(tenant) +
           (storing == storing_tenants_.end() ? 0 : storing->second);
}

void Broker::stored(const SubmitItem& job) {
    --storing_[job.type];
    if (auto tenant = storing_tenants_.find(job.tenant); --tenant->second == 0) storing_tenants_.erase(tenant);
}

void Broker::flush_submits() {
    if (submits_.empty()) return;
    const std::int64_t now = now_ms();
    std::vector<std::string> args = batch_args({now, config_.tenant_max_bytes, IDEMPOTENCY_TTL_S}, submits_);
    auto batch = std::make_shared<std::vector<SubmitItem>>(std::move(submits_));
    submits_.clear();
    const bool sent = eval(scripts::SUBMIT, {}, std::move(args), [this, batch, now](redisReply* r) {
        const bool ok = r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == batch->size();
        if (!ok) log::error("submit of {} job(s) failed: {}", batch->size(), reply_error(r));
        // 202s and replays: they promise a stored job, so they wait for the replicas if asked to.
        std::vector<std::pair<std::string, proto::Reply>> acks;
        for (std::size_t i = 0; i < batch->size(); ++i) {
            const SubmitItem& job = (*batch)[i];
            stored(job);
            if (!job.answer) {  // a flow's child: queued with its parent, else skipped
                if (ok && reply_text(r->element[i]) == "ok") {
                    queues_.push(job.type, job.job_id, job.priority,
                                 Owner{job.tenant, job.concurrency_key, job.concurrency_limit}, job.enqueued_ms);
                    metrics_.count(job.type, BrokerMetrics::SUBMITTED);
                }
                continue;
            }
            if (!ok) {
                refuse_unstored(job.peer, job.req_id, "the job could not be stored");
                continue;
            }
            const redisReply* answer = r->element[i];
            if (answer->type == REDIS_REPLY_ARRAY && answer->elements >= 2) {
                const std::string outcome = reply_text(answer->element[0]), value = reply_text(answer->element[1]);
                if (outcome == "cached") {
                    accept_cached(job.peer, job.req_id, value);
                } else if (outcome == "joined") {
                    // Stored beside the job it joined, which runs for both: nothing to queue.
                    metrics_.count(job.type, BrokerMetrics::SUBMITTED);
                    metrics_.count(job.type, BrokerMetrics::JOINED);
                    acks.emplace_back(job.peer, stored_reply(job.req_id, job.job_id,
                                                             answer->elements > 2 ? reply_text(answer->element[2]) : "",
                                                             false, value));
                } else if (outcome == "replay") {
                    acks.emplace_back(job.peer, stored_reply(job.req_id, value,
                                                             answer->elements > 2 ? reply_text(answer->element[2]) : "",
                                                             true,
                                                             answer->elements > 3 ? reply_text(answer->element[3]) : ""));
                } else if (outcome == "over_budget") {
                    refuse(job.peer, job.req_id, errors::STORAGE_FULL,
                           fmt::format("tenant '{}' holds {} bytes in the job store, its budget is {} "
                                       "(SLUICE_TENANT_MAX_BYTES); a finished job's bytes come back when it expires",
                                       job.tenant, value, config_.tenant_max_bytes));
                } else {
                    refuse(job.peer, job.req_id, errors::IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used for a different request", value);
                }
            } else if (reply_text(answer) == "ok" && !job.children.empty()) {
                ++flows_live_;
                metrics_.count(job.type, BrokerMetrics::SUBMITTED);
                acks.emplace_back(job.peer, stored_reply(job.req_id, job.job_id, "waiting_children"));
            } else if (reply_text(answer) == "ok" && job.scheduled(now)) {
                schedule_.add(job.job_id, job.type, job.tenant, static_cast<std::int64_t>(job.run_at_ms));
                metrics_.count(job.type, BrokerMetrics::SUBMITTED);
                acks.emplace_back(job.peer, stored_reply(job.req_id, job.job_id, "scheduled"));
            } else if (reply_text(answer) == "ok") {
                queues_.push(job.type, job.job_id, job.priority,
                             Owner{job.tenant, job.concurrency_key, job.concurrency_limit}, job.enqueued_ms);
                metrics_.count(job.type, BrokerMetrics::SUBMITTED);
                acks.emplace_back(job.peer, stored_reply(job.req_id, job.job_id, "queued"));
            } else {
                refuse(job.peer, job.req_id, errors::DUPLICATE_JOB_ID, "job id already exists", job.job_id);
            }
        }
        if (!acks.empty()) send_when_replicated(std::move(acks));
    });
    if (!sent)
        for (const SubmitItem& job : *batch) {
            stored(job);
            if (job.answer) refuse(job.peer, job.req_id, errors::REDIS_UNAVAILABLE, "Redis is unreachable");
        }
}

void Broker::send_when_replicated(std::vector<std::pair<std::string, proto::Reply>> acks) {
    if (config_.redis_min_replicas == 0) {
        for (auto& [peer, reply] : acks) send_reply(peer, std::move(reply));
        return;
    }
    std::move(acks.begin(), acks.end(), std::back_inserter(waiting_acks_));
    if (!replica_wait_in_flight_) wait_replicas();
}

void Broker::wait_replicas() {
    // WAIT counts the replicas that acknowledged every write of this connection so far, so it
    // covers the scripts of every batch answered since the last one (and a replayed job's first
    // store, when this connection made it).
    auto held = std::make_shared<std::vector<std::pair<std::string, proto::Reply>>>(std::move(waiting_acks_));
    waiting_acks_.clear();
    const std::chrono::milliseconds timeout =
        replicas_missing_ ? std::min(MISSING_REPLICAS_WAIT, config_.redis_wait_timeout) : config_.redis_wait_timeout;
    auto answer = [this, held, timeout](redisReply* r) {
        replica_wait_in_flight_ = false;
        const long long have = r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        replicas_missing_ = have < config_.redis_min_replicas;
        if (!replicas_missing_) {
            for (auto& [peer, reply] : *held) send_reply(peer, std::move(reply));
        } else {
            dropped_.warn("submit batches not replicated in time", Clock::now(),
                          "{} submit(s) answered 503 not_replicated: {} of {} replica(s) confirmed within {} ms ({})",
                          held->size(), have, config_.redis_min_replicas, timeout.count(),
                          r == nullptr || r->type == REDIS_REPLY_ERROR ? reply_error(r) : "WAIT timed out");
            for (auto& [peer, reply] : *held)
                refuse(peer, reply.req_id, errors::NOT_REPLICATED,
                       fmt::format("job {} is stored on the Redis master, but {} of the {} replica(s) required "
                                   "(SLUICE_REDIS_MIN_REPLICAS) confirmed it within {} ms: it may run, or be lost if "
                                   "the master fails now. Retry with the same Idempotency-Key, which answers for this "
                                   "job once replicas hold it; without one, look the job up before submitting again",
                                   reply.job_id, have, config_.redis_min_replicas, timeout.count()),
                       reply.job_id);
        }
        if (!waiting_acks_.empty()) wait_replicas();
    };
    replica_wait_in_flight_ = true;
    if (!redis_.command({"WAIT", std::to_string(config_.redis_min_replicas), std::to_string(timeout.count())}, answer))
        answer(nullptr);
}

void Broker::handle_cancel(const std::string& peer, const proto::Cancel& msg) {
    if (!is_uuid(msg.job_id)) return refuse(peer, msg.req_id, errors::JOB_NOT_FOUND, "no such job");
    const bool sent = eval_on_job(
        scripts::CANCEL, msg.job_id,
        {msg.job_id, std::to_string(now_ms()), std::to_string(config_.events_maxlen), std::to_string(config_.job_ttl_s)},
        [this, peer, req_id = msg.req_id, id = msg.job_id](redisReply* r) {
            const std::string outcome = reply_text(r);
            if (outcome == "not_found") return refuse(peer, req_id, errors::JOB_NOT_FOUND, "no such job", id);
            if (outcome == "finished") return refuse(peer, req_id, errors::JOB_FINISHED, "the job has already finished", id);
            if (!forget_canceled(id, outcome)) {
                log::error("cancel of job {} failed: {}", id, reply_error(r));
                return refuse_unstored(peer, req_id, "the cancel could not be stored", id);
            }
            log::info("job {} canceled (was {})", id, outcome);
            accept(peer, req_id, id, "canceled");
        });
    if (!sent) refuse(peer, msg.req_id, errors::REDIS_UNAVAILABLE, "Redis is unreachable");
}

bool Broker::forget_canceled(const std::string& id, std::string_view was) {
    if (was == "queued") {
        queues_.remove(id);
        jobs_.drop_delayed(id);
    } else if (was == "scheduled") {
        schedule_.remove(id);
    } else if (was == "waiting_children") {
        // Out of every queue: SETTLE cancels its children.
    } else if (was == "running") {
        budgets_.forget(id);  // its estimate stays spent: the worker may have called the model
        if (auto run = jobs_.cancel(id))
            if (WorkerInfo* worker = workers_.find(run->identity))
                send_to_worker(*worker, proto::Command::CANCEL_JOB, proto::encode_body(proto::CancelJob{id, run->attempt}));
    } else {
        return false;
    }
    return true;
}

void Broker::cancel_abandoned(Clock::time_point now) {
    if (abandoning_ || now < next_abandon_) return;
    abandoning_ = true;
    const bool sent = eval(
        scripts::ABANDON, {},
        {std::to_string(now_ms()), std::to_string(ABANDON_BATCH), std::to_string(config_.events_maxlen),
         std::to_string(config_.job_ttl_s)},
        [this](redisReply* r) {
            abandoning_ = false;
            next_abandon_ = Clock::now() + ABANDON_INTERVAL;
            if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
                if (r != nullptr) log::error("canceling unfollowed jobs failed: {}", reply_error(r));
                return;
            }
            for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
                const std::string id = reply_text(r->element[i]), was = reply_text(r->element[i + 1]);
                if (forget_canceled(id, was)) log::info("job {} canceled (was {}): nobody followed it", id, was);
            }
            if (r->elements / 2 >= ABANDON_BATCH) next_abandon_ = Clock::now();  // more are due
        });
    if (!sent) abandoning_ = false;
}

void Broker::handle_retry(const std::string& peer, const proto::Retry& msg) {
    if (!is_uuid(msg.job_id)) return refuse(peer, msg.req_id, errors::JOB_NOT_FOUND, "no such job");
    const bool sent = eval_on_job(
        scripts::RETRY, msg.job_id,
        {msg.job_id, std::to_string(now_ms()), std::to_string(config_.events_maxlen)},
        [this, peer, req_id = msg.req_id, id = msg.job_id](redisReply* r) {
            if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 6) {
                const std::string type = reply_text(r->element[1]);
                queues_.push(type, id, static_cast<int>(r->element[2]->integer), owner_of(r->element + 3), now_ms());
                log::info("job {} ({}) retried from the dead set", id, type);
                return accept(peer, req_id, id, "queued");
            }
            const std::string outcome = reply_text(r);
            if (outcome == "not_found") return refuse(peer, req_id, errors::JOB_NOT_FOUND, "no such job", id);
            if (outcome == "not_dead") return refuse(peer, req_id, errors::JOB_NOT_DEAD, "only a dead (failed) job can be retried", id);
            log::error("retry of job {} failed: {}", id, reply_error(r));
            refuse_unstored(peer, req_id, "the retry could not be stored", id);
        });
    if (!sent) refuse(peer, msg.req_id, errors::REDIS_UNAVAILABLE, "Redis is unreachable");
}

void Broker::handle_ping(const std::string& peer, const proto::Ping& msg) {
    if (redis_.connected()) return accept(peer, msg.req_id);
    refuse(peer, msg.req_id, errors::REDIS_UNAVAILABLE, "Redis is unreachable");
}

}  // namespace sluice::broker
