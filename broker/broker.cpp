// The broker loop and one handler per command (see broker.hpp and schemas/PROTOCOL.md).
#include "broker.hpp"

#include "log.hpp"
#include "names.hpp"
#include "scripts.hpp"

#include <fmt/ranges.h>

#include <openssl/sha.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <unordered_set>

namespace sluice::broker {
namespace {

using namespace std::chrono_literals;

// Longest wait in poll: timers (heartbeats, expiry, retry backoff, Redis reconnect) run at least
// this often. 100 ms is far below the 1 s heartbeat period and costs nothing when idle.
constexpr std::chrono::milliseconds POLL_TICK{100};
// How long shutdown waits for Redis replies still owed, so a write that landed is acknowledged.
constexpr std::chrono::milliseconds SHUTDOWN_REPLY_WAIT{2000};
// Messages taken from one socket per loop turn, so a flood on one side cannot starve the other.
constexpr int MAX_BATCH = 256;
// How long past its timeout_s a running job's lease lasts. The worker cancels the handler at
// timeout_s itself; the grace covers its report's trip and a slow cancel before the broker
// gives up on the attempt.
constexpr std::chrono::milliseconds LEASE_GRACE{5000};
// An Idempotency-Key is remembered this long (as Stripe does).
constexpr std::int64_t IDEMPOTENCY_TTL_S = 24 * 3600;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string job_key(const std::string& id) { return "sluice:job:" + id; }
std::string queue_key(const std::string& type) { return "sluice:queue:" + type; }
const std::string TYPES_KEY = "sluice:types";

// Returns the reply's text for a status or string reply, "" otherwise.
std::string reply_text(const redisReply* r) {
    if (r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        return std::string(r->str, r->len);
    return {};
}

std::string reply_error(const redisReply* r) {
    if (r == nullptr) return "connection lost";
    if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
    return "unexpected reply";
}

void log_stale(const char* what, const std::string& job_id, std::uint32_t attempt) {
    log::warn("dropped stale {} for job {} attempt {}", what, job_id, attempt);
}

std::string sha1_hex(const std::string& text) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    std::string hex;
    for (unsigned char byte : digest) hex += fmt::format("{:02x}", byte);
    return hex;
}

}  // namespace

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)),
      context_(1),
      frontend_(context_, zmq::socket_type::router),
      backend_(context_, zmq::socket_type::router),
      jobs_(workers_, Backoff{std::chrono::milliseconds(config_.retry_backoff_ms),
                              std::chrono::milliseconds(config_.retry_backoff_max_ms)}),
      redis_(config_.redis_host, config_.redis_port) {
    for (zmq::socket_t* socket : {&frontend_, &backend_}) {
        socket->set(zmq::sockopt::linger, 0);
        socket->set(zmq::sockopt::router_mandatory, 1);
    }
    known_types_.insert(config_.known_types.begin(), config_.known_types.end());
    frontend_.bind(config_.frontend_endpoint);
    backend_.bind(config_.backend_endpoint);
    frontend_endpoint_ = frontend_.get(zmq::sockopt::last_endpoint);
    backend_endpoint_ = backend_.get(zmq::sockopt::last_endpoint);
}

// The loop, one turn:
//   1. keep the Redis connection up; whenever it (re)connects, resync memory with Redis
//   2. poll both sockets, the Redis fd and stop_fd, at most POLL_TICK
//   3. drive Redis I/O: arriving replies run their callbacks (acks, JOB sends)
//   4. handle waiting api messages, then waiting worker messages (once first synced); the
//      turn's SUBMITs, RESULTs and job starts each go to Redis as one script call
//   5. timers: heartbeats out, silent workers forgotten, leases expired, retries released
//   6. dispatch queued jobs against worker credit (while in sync with Redis)
void Broker::run(int stop_fd) {
    for (;;) {
        const auto now = Clock::now();
        redis_.maintain(now);
        if (was_connected_ && !redis_.connected()) {
            log::warn("Redis connection lost: dispatch paused, submits answer 503 until it is back");
            sync_ = Sync::NONE;
        }
        was_connected_ = redis_.connected();
        if (redis_.connected() && sync_ == Sync::NONE) resync();

        std::vector<zmq::pollitem_t> items = {
            {nullptr, stop_fd, ZMQ_POLLIN, 0},
            {nullptr, redis_.fd(),
             static_cast<short>((redis_.wants_read() ? ZMQ_POLLIN : 0) |
                                (redis_.wants_write() ? ZMQ_POLLOUT : 0)),
             0},
        };
        const bool serving = served_;
        if (serving) {
            items.push_back({frontend_.handle(), 0, ZMQ_POLLIN, 0});
            items.push_back({backend_.handle(), 0, ZMQ_POLLIN, 0});
        }
        try {
            zmq::poll(items, POLL_TICK);
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
        }
        if (items[0].revents & ZMQ_POLLIN) break;
        if (items[1].revents & ZMQ_POLLOUT) redis_.on_writable();
        if (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) redis_.on_readable();

        if (serving) {
            handle_waiting(frontend_, "frontend", &Broker::handle_frontend);
            flush_submits();
            handle_waiting(backend_, "backend", &Broker::handle_backend);
            flush_results();
            run_timers(Clock::now());
            dispatch();
        }
    }

    log::info("shutting down: waiting for {} Redis repl{}", redis_.pending(),
              redis_.pending() == 1 ? "y" : "ies");
    const auto deadline = Clock::now() + SHUTDOWN_REPLY_WAIT;
    while (redis_.pending() > 0 && redis_.connected() && Clock::now() < deadline) {
        std::vector<zmq::pollitem_t> items = {{nullptr, redis_.fd(), ZMQ_POLLIN, 0}};
        zmq::poll(items, POLL_TICK);
        if (items[0].revents) redis_.on_readable();
    }
    log::info("stopped");
}

void Broker::handle_waiting(zmq::socket_t& socket, const char* side, void (Broker::*handle)(const proto::Envelope&)) {
    for (int i = 0; i < MAX_BATCH; ++i) {
        auto received = proto::try_recv(socket, true);
        if (!received) return;
        if (received->envelope) (this->*handle)(*received->envelope);
        else log::warn("{}: dropped malformed message: {}", side, received->error);
    }
}

bool Broker::eval(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
                  RedisLink::Callback done) {
    // EVALSHA: Redis runs the script it already compiled, and the script's text (up to 2 KB)
    // stays off the wire. After a Redis restart its script cache is empty: NOSCRIPT, and the
    // same call goes again as EVAL, which caches it again.
    auto sha = script_sha_.find(&script);
    if (sha == script_sha_.end()) sha = script_sha_.emplace(&script, sha1_hex(script)).first;
    // The arguments (every job's input or result in a batch) are moved, never copied: into
    // argv, and argv into the callback that may need it again for the EVAL.
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVALSHA");
    argv.push_back(sha->second);
    argv.push_back(std::to_string(keys.size()));
    std::move(keys.begin(), keys.end(), std::back_inserter(argv));
    std::move(args.begin(), args.end(), std::back_inserter(argv));
    // Views first: moving argv into the callback moves its buffer, not the strings in it.
    const std::vector<std::string_view> views(argv.begin(), argv.end());
    auto retry = [this, &script, argv = std::move(argv), done = std::move(done)](redisReply* r) mutable {
        if (r != nullptr && r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).starts_with("NOSCRIPT")) {
            argv[0] = "EVAL";
            argv[1] = script;
            if (!redis_.command({argv.begin(), argv.end()}, std::move(done))) done(nullptr);
            return;
        }
        done(r);
    };
    return redis_.command(views, std::move(retry));
}

void Broker::resync() {
    sync_ = Sync::IN_PROGRESS;
    std::vector<std::string> args = {std::to_string(now_ms()), std::to_string(config_.events_maxlen),
                                     std::to_string(config_.job_ttl_s)};
    for (std::string& job_id : jobs_.started_jobs()) args.push_back(std::move(job_id));
    const bool sent = eval(scripts::RECOVER, {}, std::move(args), [this](redisReply* r) {
        if (r == nullptr || r->type != REDIS_REPLY_INTEGER) {
            log::error("resync failed: {}", reply_error(r));
            sync_ = Sync::NONE;
            return;
        }
        if (r->integer > 0)
            log::warn("{} job(s) marked running had no worker here: put back in their queues", r->integer);
        store_types(config_.known_types);
        std::vector<std::string_view> argv = {"SMEMBERS", TYPES_KEY};
        redis_.command(argv, [this](redisReply* types) {
            if (types == nullptr || types->type != REDIS_REPLY_ARRAY) {
                log::error("resync failed: {}", reply_error(types));
                sync_ = Sync::NONE;
                return;
            }
            std::vector<std::string> names;
            for (size_t i = 0; i < types->elements; ++i) names.push_back(reply_text(types->element[i]));
            load_queues(names);
        });
    });
    if (!sent) sync_ = Sync::NONE;
}

void Broker::store_types(const std::vector<std::string>& types) {
    if (types.empty()) return;
    std::vector<std::string_view> argv = {"SADD", TYPES_KEY};
    argv.insert(argv.end(), types.begin(), types.end());
    redis_.command(argv, [types](redisReply* r) {
        if (r == nullptr || r->type == REDIS_REPLY_ERROR)
            log::error("storing job type(s) {} failed: {}", fmt::join(types, ", "), reply_error(r));
    });
}

void Broker::load_queues(const std::vector<std::string>& types) {
    known_types_.insert(types.begin(), types.end());
    // Redis is the truth for what is queued; jobs held here (running, or waiting out a retry
    // backoff) are skipped. A submit acknowledged meanwhile is refused by push() as a duplicate.
    queues_ = JobQueues();
    if (types.empty()) {
        sync_ = Sync::DONE;
        served_ = true;
        log::info("ready: no job types known yet");
        return;
    }
    auto remaining = std::make_shared<std::size_t>(types.size());
    for (const auto& type : types) {
        eval(scripts::LOAD_QUEUE, {queue_key(type)}, {}, [this, type, remaining](redisReply* r) {
            if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
                log::error("loading queue {} failed: {}", type, reply_error(r));
                sync_ = Sync::NONE;
                return;
            }
            const std::unordered_set<std::string> held = jobs_.held_jobs();
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                std::string id = reply_text(r->element[i]);
                if (held.count(id) == 0)
                    queues_.push(type, id, std::atoi(reply_text(r->element[i + 1]).c_str()));
            }
            if (--*remaining == 0 && sync_ == Sync::IN_PROGRESS) {
                sync_ = Sync::DONE;
                served_ = true;
                log::info("ready: {} job type(s) known, {} queued job(s) loaded from Redis", known_types_.size(),
                          queues_.total());
            }
        });
    }
}

// ---- api side ----------------------------------------------------------------------------

void Broker::handle_frontend(const proto::Envelope& env) {
    switch (static_cast<proto::Command>(env.command)) {
        case proto::Command::SUBMIT:
            if (auto msg = proto::decode_body<proto::Submit>(env.body)) return handle_submit(env.identity, std::move(*msg));
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
            log::warn("frontend: dropped {}: not an api command", proto::command_name(env.command));
            return;
    }
    log::warn("frontend: dropped {} with a malformed body", proto::command_name(env.command));
}

void Broker::accept(const std::string& peer, std::uint64_t req_id, std::string job_id, std::string state) {
    send_reply(peer, proto::Reply{req_id, 200, "", "", std::move(job_id), std::move(state)});
}

void Broker::accept_new(const std::string& peer, std::uint64_t req_id, std::string job_id) {
    send_reply(peer, proto::Reply{req_id, 202, "", "", std::move(job_id), "queued"});
}

void Broker::accept_replay(const std::string& peer, std::uint64_t req_id, std::string original_id) {
    send_reply(peer, proto::Reply{req_id, 200, "", "idempotent replay", std::move(original_id), ""});
}

void Broker::refuse(const std::string& peer, std::uint64_t req_id, std::uint32_t status, std::string code,
                    std::string message, std::string job_id) {
    send_reply(peer, proto::Reply{req_id, status, std::move(code), std::move(message), std::move(job_id), ""});
}

void Broker::send_reply(const std::string& peer, proto::Reply msg) {
    if (!proto::send(frontend_, msg, peer)) log::warn("api peer gone: reply {} dropped", msg.req_id);
}

void Broker::handle_submit(const std::string& peer, proto::Submit msg) {
    if (!valid_job_type(msg.type) || !valid_job_id(msg.job_id) || msg.priority < 0 ||
        msg.priority > MAX_PRIORITY || msg.max_attempts < 1 || msg.timeout_s < 1)
        return refuse(peer, msg.req_id, 422, "invalid_request", "invalid job type, id or option");
    if (known_types_.count(msg.type) == 0)
        return refuse(peer, msg.req_id, 422, "unknown_job_type",
                      fmt::format("no worker has declared job type '{}'", msg.type));
    if (queues_.depth(msg.type) + storing_[msg.type] >= config_.max_queue_depth)
        return refuse(peer, msg.req_id, 429, "queue_full",
                      fmt::format("queue '{}' holds {} jobs, its limit", msg.type, config_.max_queue_depth));
    if (!redis_.connected()) return refuse(peer, msg.req_id, 503, "redis_unavailable", "Redis is unreachable");
    if (msg.idempotency_key.size() > 255 || msg.request_hash.find(' ') != std::string::npos)
        return refuse(peer, msg.req_id, 422, "invalid_request", "invalid idempotency key or request hash");

    ++storing_[msg.type];
    std::string idempotency_key =
        msg.idempotency_key.empty() ? "" : "sluice:idem:" + msg.tenant + ":" + msg.idempotency_key;
    submits_.push_back(SubmitItem{peer, msg.req_id, std::move(msg.job_id), std::move(msg.tenant), std::move(msg.type),
                                  std::string(msg.input.begin(), msg.input.end()), static_cast<int>(msg.priority),
                                  msg.max_attempts, msg.timeout_s, now_ms(), std::move(idempotency_key),
                                  std::move(msg.request_hash)});
}

template <class Item>
std::vector<std::string> Broker::batch_args(std::string third, std::vector<Item>& items) {
    std::vector<std::string> args;
    args.reserve(3 + Item::STRIDE * items.size());
    args.push_back(std::to_string(now_ms()));
    args.push_back(std::to_string(config_.events_maxlen));
    args.push_back(std::move(third));
    for (Item& item : items) {
        auto fields = item.take_args();
        std::move(fields.begin(), fields.end(), std::back_inserter(args));
    }
    return args;
}

void Broker::flush_submits() {
    if (submits_.empty()) return;
    std::vector<std::string> args = batch_args(std::to_string(IDEMPOTENCY_TTL_S), submits_);
    auto batch = std::make_shared<std::vector<SubmitItem>>(std::move(submits_));
    submits_.clear();
    const bool sent = eval(scripts::SUBMIT, {}, std::move(args), [this, batch](redisReply* r) {
        const bool ok = r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == batch->size();
        if (!ok) log::error("submit of {} job(s) failed: {}", batch->size(), reply_error(r));
        for (std::size_t i = 0; i < batch->size(); ++i) {
            const SubmitItem& job = (*batch)[i];
            --storing_[job.type];
            if (!ok) {
                refuse(job.peer, job.req_id, 503, "redis_unavailable", "the job could not be stored");
                continue;
            }
            const redisReply* answer = r->element[i];
            if (answer->type == REDIS_REPLY_ARRAY && answer->elements == 2) {
                const std::string original = reply_text(answer->element[1]);
                if (reply_text(answer->element[0]) == "replay")
                    accept_replay(job.peer, job.req_id, original);
                else
                    refuse(job.peer, job.req_id, 409, "idempotency_conflict",
                           "this Idempotency-Key was used for a different request", original);
            } else if (reply_text(answer) == "ok") {
                queues_.push(job.type, job.job_id, job.priority);
                accept_new(job.peer, job.req_id, job.job_id);
            } else {
                refuse(job.peer, job.req_id, 409, "duplicate_job_id", "job id already exists", job.job_id);
            }
        }
    });
    if (!sent)
        for (const SubmitItem& job : *batch) {
            --storing_[job.type];
            refuse(job.peer, job.req_id, 503, "redis_unavailable", "Redis is unreachable");
        }
}

void Broker::handle_cancel(const std::string& peer, const proto::Cancel& msg) {
    if (!valid_job_id(msg.job_id)) return refuse(peer, msg.req_id, 404, "job_not_found", "no such job");
    const bool sent = eval(
        scripts::CANCEL, {job_key(msg.job_id)},
        {msg.job_id, std::to_string(now_ms()), std::to_string(config_.events_maxlen), std::to_string(config_.job_ttl_s)},
        [this, peer, req_id = msg.req_id, id = msg.job_id](redisReply* r) {
            const std::string outcome = reply_text(r);
            if (outcome == "not_found") return refuse(peer, req_id, 404, "job_not_found", "no such job", id);
            if (outcome == "finished") return refuse(peer, req_id, 409, "job_finished", "the job has already finished", id);
            if (outcome == "queued") {
                queues_.remove(id);
                jobs_.drop_delayed(id);
            } else if (outcome == "running") {
                if (auto run = jobs_.cancel(id))
                    if (WorkerInfo* worker = workers_.find(run->identity))
                        send_to_worker(*worker, proto::Command::CANCEL_JOB,
                                       proto::encode_body(proto::CancelJob{id, run->attempt}));
            } else {
                log::error("cancel of job {} failed: {}", id, reply_error(r));
                return refuse(peer, req_id, 503, "redis_unavailable", "the cancel could not be stored", id);
            }
            log::info("job {} canceled (was {})", id, outcome);
            accept(peer, req_id, id, "canceled");
        });
    if (!sent) refuse(peer, msg.req_id, 503, "redis_unavailable", "Redis is unreachable");
}

void Broker::handle_retry(const std::string& peer, const proto::Retry& msg) {
    if (!valid_job_id(msg.job_id)) return refuse(peer, msg.req_id, 404, "job_not_found", "no such job");
    const bool sent = eval(
        scripts::RETRY, {job_key(msg.job_id)},
        {msg.job_id, std::to_string(now_ms()), std::to_string(config_.events_maxlen)},
        [this, peer, req_id = msg.req_id, id = msg.job_id](redisReply* r) {
            if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
                const std::string type = reply_text(r->element[1]);
                queues_.push(type, id, static_cast<int>(r->element[2]->integer));
                log::info("job {} ({}) retried from the dead set", id, type);
                return accept(peer, req_id, id, "queued");
            }
            const std::string outcome = reply_text(r);
            if (outcome == "not_found") return refuse(peer, req_id, 404, "job_not_found", "no such job", id);
            if (outcome == "not_dead") return refuse(peer, req_id, 409, "job_not_dead", "only a dead (failed) job can be retried", id);
            log::error("retry of job {} failed: {}", id, reply_error(r));
            refuse(peer, req_id, 503, "redis_unavailable", "the retry could not be stored", id);
        });
    if (!sent) refuse(peer, msg.req_id, 503, "redis_unavailable", "Redis is unreachable");
}

void Broker::handle_ping(const std::string& peer, const proto::Ping& msg) {
    if (redis_.connected()) return accept(peer, msg.req_id);
    refuse(peer, msg.req_id, 503, "redis_unavailable", "Redis is unreachable");
}

// ---- worker side -------------------------------------------------------------------------

void Broker::handle_backend(const proto::Envelope& env) {
    const auto command = static_cast<proto::Command>(env.command);
    const std::string& peer = env.identity;
    if (command == proto::Command::READY) {
        if (auto msg = proto::decode_body<proto::Ready>(env.body)) return handle_ready(peer, *msg);
        log::warn("backend: dropped READY with a malformed body");
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
                const double fraction = std::isfinite(msg->fraction) ? std::clamp(msg->fraction, 0.0, 1.0) : 0.0;
                handle_event(peer, msg->job_id, msg->attempt,
                             {"event", "progress", "fraction", fmt::format("{}", fraction), "message", msg->message});
            } else ok = false;
            break;
        case proto::Command::CHUNK:
            if (auto msg = proto::decode_body<proto::Chunk>(env.body))
                handle_event(peer, msg->job_id, msg->attempt, {"event", "chunk", "data", msg->data});
            else ok = false;
            break;
        case proto::Command::RESULT:
            if (auto msg = proto::decode_body<proto::Result>(env.body)) handle_result(peer, std::move(*msg));
            else ok = false;
            break;
        case proto::Command::FAILURE:
            if (auto msg = proto::decode_body<proto::Failure>(env.body)) handle_failure(peer, *msg);
            else ok = false;
            break;
        case proto::Command::CANCELED:
            if (auto msg = proto::decode_body<proto::Canceled>(env.body)) handle_canceled(peer, *msg);
            else ok = false;
            break;
        case proto::Command::DISCONNECT:
            // A worker shutting down gracefully: it gets no new jobs, and the ones it holds
            // finish (or come back when its heartbeats stop).
            worker->leaving = true;
            log::info("worker {} is shutting down: finishing {} job(s)", worker->name, worker->jobs.size());
            break;
        default:
            log::warn("backend: dropped {}: not a worker command", proto::command_name(env.command));
    }
    if (!ok) log::warn("backend: dropped {} with a malformed body", proto::command_name(env.command));
}

void Broker::handle_ready(const std::string& peer, const proto::Ready& msg) {
    const bool valid = !msg.types.empty() && msg.concurrency >= 1 && msg.concurrency <= 100000 &&
                       std::all_of(msg.types.begin(), msg.types.end(), [](const auto& t) { return valid_job_type(t); });
    if (!valid) {
        log::warn("backend: dropped READY from '{}': needs 1+ valid job types and concurrency 1..100000",
                  msg.worker_name.substr(0, MAX_NAME));
        return;
    }
    const bool known = workers_.find(peer) != nullptr;
    WorkerInfo& worker = workers_.ready(peer, msg.worker_name.substr(0, MAX_NAME), msg.runtime.substr(0, 16),
                                        msg.types, msg.concurrency, Clock::now());
    std::vector<std::string> declared;
    for (const auto& type : msg.types)
        if (known_types_.insert(type).second) declared.push_back(type);
    store_types(declared);
    if (!known)
        log::info("worker {} ({}) ready: types [{}], concurrency {}", worker.name, worker.runtime,
                  fmt::join(msg.types, ", "), worker.concurrency);
}

void Broker::handle_event(const std::string& peer, const std::string& job_id, std::uint32_t attempt,
                          std::vector<std::string> fields) {
    if (jobs_.current(peer, job_id, attempt) == nullptr) return log_stale(fields[1].c_str(), job_id, attempt);
    std::vector<std::string> args = {job_id, std::to_string(attempt), std::to_string(now_ms()),
                                     std::to_string(config_.events_maxlen)};
    args.insert(args.end(), std::make_move_iterator(fields.begin()), std::make_move_iterator(fields.end()));
    eval(scripts::EVENT, {job_key(job_id)}, std::move(args), [job_id](redisReply* r) {
        const std::string outcome = reply_text(r);
        if (outcome == "stale") log::warn("dropped stale event for job {}", job_id);
        else if (outcome != "ok") log::error("event of job {} not stored: {}", job_id, reply_error(r));
    });
}

void Broker::handle_result(const std::string& peer, proto::Result msg) {
    if (!jobs_.finish(peer, msg.job_id, msg.attempt)) return log_stale("RESULT", msg.job_id, msg.attempt);
    results_.push_back(ResultItem{std::move(msg.job_id), msg.attempt, std::string(msg.result.begin(), msg.result.end())});
}

void Broker::flush_results() {
    if (results_.empty()) return;
    std::vector<std::string> args = batch_args(std::to_string(config_.job_ttl_s), results_);
    auto batch = std::make_shared<std::vector<ResultItem>>(std::move(results_));
    results_.clear();
    // A result that cannot be stored is not lost for good: the job stays running in Redis and
    // the resync after Redis comes back runs it again.
    eval(scripts::SUCCEED, {}, std::move(args), [batch](redisReply* r) {
        if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != batch->size()) {
            log::error("results of {} job(s) not stored: {}", batch->size(), reply_error(r));
            return;
        }
        for (std::size_t i = 0; i < batch->size(); ++i)
            if (reply_text(r->element[i]) == "stale") log::warn("dropped stale RESULT for job {}", (*batch)[i].job_id);
    });
}

void Broker::handle_failure(const std::string& peer, const proto::Failure& msg) {
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!run) return log_stale("FAILURE", msg.job_id, msg.attempt);
    fail_job(msg.job_id, *run, msg.error, "failed", msg.retryable);
}

void Broker::handle_canceled(const std::string& peer, const proto::Canceled& msg) {
    auto run = jobs_.finish(peer, msg.job_id, msg.attempt);
    if (!run) return log_stale("CANCELED", msg.job_id, msg.attempt);
    // A worker that cancels a job nobody asked it to cancel (its shutdown grace ran out)
    // did not finish it: the job runs again.
    fail_job(msg.job_id, *run, "canceled by the worker", "lost", true);
}

void Broker::fail_job(const std::string& job_id, const Attempt& run, const std::string& error,
                      const char* outcome, bool retryable) {
    const std::int64_t delay = jobs_.backoff(run.attempt).count();
    const std::int64_t now = now_ms();
    eval(scripts::FAIL, {job_key(job_id)},
         {job_id, std::to_string(run.attempt), std::to_string(now), std::to_string(config_.events_maxlen),
          std::to_string(config_.job_ttl_s), error, outcome, retryable ? "1" : "0",
          queue_score_arg(run.priority, now + delay)},
         [this, job_id, run, error, delay](redisReply* r) {
             const std::string outcome = reply_text(r);
             if (outcome == "requeued") {
                 log::info("job {} attempt {} failed ({}): retrying in {} ms", job_id, run.attempt, error, delay);
                 jobs_.delay(Clock::now() + std::chrono::milliseconds(delay), Delayed{job_id, run.type, run.priority});
             } else if (outcome == "failed") {
                 log::info("job {} failed after attempt {}: {}", job_id, run.attempt, error);
             } else if (outcome == "stale") {
                 log::warn("dropped stale FAILURE for job {}", job_id);
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

// ---- dispatch and timers -----------------------------------------------------------------

void Broker::dispatch() {
    if (sync_ != Sync::DONE || !redis_.connected()) return;
    for (const std::string& type : queues_.nonempty_types()) {
        while (WorkerInfo* worker = workers_.pick(type)) {
            auto next = queues_.pop(type);
            if (!next) break;
            start_job(*worker, type, next->job_id, next->priority);
        }
    }
    flush_starts();
}

void Broker::start_job(WorkerInfo& worker, const std::string& type, const std::string& job_id, int priority) {
    jobs_.assign(worker, job_id, type, priority);
    starts_.push_back(StartItem{worker.identity, worker.name, type, job_id, priority});
}

void Broker::flush_starts() {
    if (starts_.empty()) return;
    std::vector<std::string> args = batch_args(std::to_string(LEASE_GRACE.count()), starts_);
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
        // Not started for want of Redis: the job is still queued there, so here too. Otherwise
        // it was canceled meanwhile.
        if (!stored) queues_.push(job.type, job.job_id, job.priority);
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
        return fail_job(job.job_id, Attempt{job.identity, job.type, job.priority, attempt}, "worker lost", "lost", true);
    }
    proto::Job msg{job.job_id, job.type, proto::Bytes(input->str, input->str + input->len), attempt, timeout_s};
    send_to_worker(*worker, proto::Command::JOB, proto::encode_body(msg));
}

void Broker::run_timers(Clock::time_point now) {
    const auto interval = std::chrono::milliseconds(proto::HEARTBEAT_INTERVAL_MS);
    for (auto& [identity, worker] : workers_.all())
        if (now - worker.last_send >= interval)
            send_to_worker(worker, proto::Command::HEARTBEAT, proto::encode_body(proto::Heartbeat{}));
    lose_workers(workers_.expire(now - interval * proto::HEARTBEAT_LIVENESS), "went silent");
    expire_leases(now);
    for (auto it = workers_.all().begin(); it != workers_.all().end();) {
        if (it->second.leaving && it->second.jobs.empty()) {
            log::info("worker {} left", it->second.name);
            it = workers_.all().erase(it);
        } else {
            ++it;
        }
    }
    for (const Delayed& retry : jobs_.take_due(now)) queues_.push(retry.type, retry.job_id, retry.priority);
}

// A worker that heartbeats but never answers (a stuck handler) loses the job at its lease
// deadline: the attempt ends as lost, the worker is told to cancel it and keeps the slot until
// it answers or dies.
void Broker::expire_leases(Clock::time_point now) {
    for (const auto& [job_id, run] : jobs_.expire_leases(now)) {
        log::warn("job {} attempt {}: lease expired without an answer", job_id, run.attempt);
        if (WorkerInfo* worker = workers_.find(run.identity))
            send_to_worker(*worker, proto::Command::CANCEL_JOB, proto::encode_body(proto::CancelJob{job_id, run.attempt}));
        fail_job(job_id, run, "lease expired: no answer within timeout_s + 5 s", "lost", true);
    }
}

}  // namespace sluice::broker
