// The broker loop, its timers, and keeping memory in step with Redis (see broker.hpp). The
// handlers live beside it: api_side.cpp (api requests), worker_side.cpp (workers, dispatch).
#include "broker.hpp"

#include "curve.hpp"
#include "keys.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "lease_scripts.hpp"
#include "budget_scripts.hpp"
#include "scripts.hpp"
#include "submit_scripts.hpp"

#include <fmt/ranges.h>

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <unordered_set>

namespace sluice::broker {
namespace {

// Longest wait in poll: timers (heartbeats, expiry, retry backoff, Redis reconnect) run at least
// this often. 100 ms is far below the 1 s heartbeat period and costs nothing when idle.
constexpr std::chrono::milliseconds POLL_TICK{100};
// How long a broker that steps down gives its last answers to reach the apis.
constexpr std::chrono::milliseconds STEP_DOWN_LINGER{1000};
// How long shutdown waits for Redis replies still owed, so a write that landed is acknowledged.
constexpr std::chrono::milliseconds SHUTDOWN_REPLY_WAIT{2000};
// Messages taken from one socket per loop turn, so a flood on one side cannot starve the other.
constexpr int MAX_BATCH = 256;
// How often the broker reads Redis's memory use (INFO memory): cheap, and a second is far
// shorter than the time a backlog takes to fill the headroom below maxmemory.
constexpr std::chrono::milliseconds STORAGE_CHECK_INTERVAL{1000};
// Expired jobs whose bytes go back to their tenants: checked once a second, at most SWEEP_BATCH
// per script call (under a millisecond of Redis time); a full batch means more are due, and
// the next call goes on the next turn.
constexpr std::chrono::milliseconds SWEEP_INTERVAL{1000};
constexpr long long SWEEP_BATCH = 2000;
// The worker report (GET /v1/workers): written once a second, gone 5 s after the broker stops
// writing it; at most this many workers in it (a few hundred bytes each).
constexpr std::chrono::milliseconds WORKER_REPORT_INTERVAL{1000};
constexpr std::chrono::milliseconds WORKER_REPORT_TTL{5000};
constexpr std::size_t MAX_REPORTED_WORKERS = 1000;
// The metrics (GET /metrics): written once a second, gone 5 s after the broker stops writing.
constexpr std::chrono::milliseconds METRICS_REPORT_INTERVAL{1000};
constexpr std::chrono::milliseconds METRICS_REPORT_TTL{5000};

// A script's name in the metrics.
std::string_view script_name(const std::string& script) {
    static const std::unordered_map<const std::string*, std::string_view> names{
        {&scripts::SUBMIT, "submit"}, {&scripts::START, "start"},   {&scripts::EVENT, "event"},
        {&scripts::SUCCEED, "succeed"}, {&scripts::FAIL, "fail"},   {&scripts::CANCEL, "cancel"},
        {&scripts::ABANDON, "abandon"}, {&scripts::RETRY, "retry"}, {&scripts::RECOVER, "recover"},
        {&scripts::SWEEP, "sweep"},     {&scripts::LOAD_QUEUE, "load_queue"}, {&scripts::CALL, "call"},
        {&scripts::CAMPAIGN, "campaign"}, {&scripts::RENEW, "renew"}, {&scripts::BUDGET_SPEND, "budget_spend"},
        {&scripts::BUDGET_LOAD, "budget_load"}};
    const auto it = names.find(&script);
    return it == names.end() ? "other" : it->second;
}
// Retry delays of a failed resync: Redis loading a big AOF answers LOADING for as long as that
// takes (seconds to minutes); asking a few times a second costs nothing and notices soon.
constexpr std::chrono::milliseconds RESYNC_BACKOFF_MIN{100};
constexpr std::chrono::milliseconds RESYNC_BACKOFF_MAX{2000};


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
      queues_(config_.fair_share),
      budgets_(std::chrono::milliseconds(config_.budget_window_ms)),
      jobs_(workers_, Backoff{std::chrono::milliseconds(config_.retry_backoff_ms),
                              std::chrono::milliseconds(config_.retry_backoff_max_ms)}),
      storage_(config_.storage_full_percent),
      redis_(config_.redis_host, config_.redis_port, config_.redis_login, config_.redis_sentinels) {
    if (config_.tracing) spans_ = std::make_unique<trace::SpanExporter>(*config_.tracing);
    for (zmq::socket_t* socket : {&frontend_, &backend_}) {
        socket->set(zmq::sockopt::linger, 0);
        socket->set(zmq::sockopt::router_mandatory, 1);
    }
    // libzmq refuses (and disconnects the peer of) a frame past these before allocating it:
    // the largest SUBMIT input, the largest RESULT, event or READY's schemas, plus the other fields.
    frontend_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(config_.max_input_bytes + limits::FRAME_HEADROOM));
    backend_.set(zmq::sockopt::maxmsgsize,
                 static_cast<std::int64_t>(std::max({config_.max_result_bytes, config_.max_event_bytes,
                                                     limits::MAX_READY_SCHEMA_BYTES}) + limits::FRAME_HEADROOM));
    known_types_.insert(config_.known_types.begin(), config_.known_types.end());
    if (config_.curve) {
        // The handler must be bound before the sockets take peers: a CURVE server without one
        // admits every client.
        zap_.emplace(context_, zmq::socket_type::rep);
        zap_->set(zmq::sockopt::linger, 0);
        zap_->bind("inproc://zeromq.zap.01");
        curve::make_server(frontend_, config_.curve->secret_key, API_DOMAIN);
        curve::make_server(backend_, config_.curve->secret_key, WORKER_DOMAIN);
    }
}

void Broker::bind_sockets() {
    frontend_.bind(config_.frontend_endpoint);
    backend_.bind(config_.backend_endpoint);
    bound_ = true;
    config_.frontend_endpoint = frontend_.get(zmq::sockopt::last_endpoint);
    config_.backend_endpoint = backend_.get(zmq::sockopt::last_endpoint);
    // The line tests and scripts/run.sh wait for (a `*` port resolved).
    std::printf("sluice-broker frontend %s backend %s\n", config_.frontend_endpoint.c_str(),
                config_.backend_endpoint.c_str());
    std::fflush(stdout);
    log::info("leading ({}): api endpoint {}, worker endpoint {}", token_, config_.frontend_endpoint,
              config_.backend_endpoint);
}

// The loop, one turn:
//   1. keep the Redis connection up and the lease: campaign for it while standing by, renew it
//      while leading; once leading, bind the sockets, and whenever Redis (re)connects, resync
//      memory with Redis
//   2. poll both sockets, the Redis fd, the ZAP socket and stop_fd, at most POLL_TICK
//   3. drive Redis I/O: arriving replies run their callbacks (acks, JOB sends, the lease's
//      answers); answer ZAP requests (a CURVE handshake waits for the answer)
//   steps 4 to 6 only once first synced, and while the lease is surely held (while it is in
//   doubt, api requests are refused at once instead):
//   4. handle waiting api messages, then waiting worker messages; the turn's SUBMITs, then
//      its RESULTs, go to Redis as one script call each
//   5. timers: heartbeats out, silent workers forgotten, leases expired, retries released
//   6. dispatch queued jobs against worker credit (while in sync with Redis); the turn's job
//      starts go to Redis as one script call
//   the loop ends after the turn that lost the lease (STEPPED_DOWN) or saw stop_fd (STOPPED).
Broker::Exit Broker::run(int stop_fd) {
    log::info("broker {} standing by for the lease (redis {}:{})", config_.broker_id, config_.redis_host,
              config_.redis_port);
    bool stopped = false;
    while (!stepping_down_) {
        const auto now = Clock::now();
        redis_.maintain(now);
        if (was_connected_ && !redis_.connected()) {
            log::warn("Redis connection lost: dispatch paused, submits answer 503 until it is back");
            scripts_sent_.clear();  // the next Redis may not have them cached
            sync_ = Sync::NONE;
            resync_backoff_ = std::chrono::milliseconds(0);
            resync_at_ = {};
        }
        was_connected_ = redis_.connected();
        keep_lease(now);
        if (!token_.empty() && !bound_) bind_sockets();
        if (!token_.empty() && redis_.connected() && sync_ == Sync::NONE && now >= resync_at_) resync();

        std::vector<zmq::pollitem_t> items = {
            {nullptr, stop_fd, ZMQ_POLLIN, 0},
            {nullptr, redis_.fd(),
             static_cast<short>((redis_.wants_read() ? ZMQ_POLLIN : 0) |
                                (redis_.wants_write() ? ZMQ_POLLOUT : 0)),
             0},
        };
        if (zap_) items.push_back({zap_->handle(), 0, ZMQ_POLLIN, 0});
        const bool serving = served_ && lease_valid(now);
        // The lease in doubt (not renewed for a lease_ttl): nothing is done but the renewal,
        // and workers hear nothing (they move on if a standby leads). Api requests wait for the
        // renewal's answer while one is on its way (a leader resumed after a pause goes on with
        // them), else they are refused at once.
        const bool in_doubt = served_ && !serving && !lease_in_flight_;
        if (serving || in_doubt) items.push_back({frontend_.handle(), 0, ZMQ_POLLIN, 0});
        if (serving) items.push_back({backend_.handle(), 0, ZMQ_POLLIN, 0});
        try {
            zmq::poll(items, POLL_TICK);
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            stopped = true;
            break;
        }
        if (items[1].revents & ZMQ_POLLOUT) redis_.on_writable();
        if (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) redis_.on_readable();
        if (zap_ && (items[2].revents & ZMQ_POLLIN)) handle_zap();

        if (serving) {
            handle_waiting(frontend_, "frontend", &Broker::handle_frontend);
            flush_submits();
            handle_waiting(backend_, "backend", &Broker::handle_backend);
            flush_results();
            run_timers(Clock::now());
            dispatch();
        } else if (in_doubt) {
            handle_waiting(frontend_, "frontend", &Broker::refuse_in_doubt);
        }
    }

    if (!stopped) {
        log::warn("stepped down: starting over as a standby");
        // The refusals of this last turn (and those the Redis replies still owed will make when
        // the link closes) go out before the socket closes, rather than leave their apis to
        // time out.
        frontend_.set(zmq::sockopt::linger, static_cast<int>(STEP_DOWN_LINGER.count()));
        return Exit::STEPPED_DOWN;
    }
    resign();
    log::info("shutting down: waiting for {} Redis repl{}", redis_.pending(),
              redis_.pending() == 1 ? "y" : "ies");
    const auto deadline = Clock::now() + SHUTDOWN_REPLY_WAIT;
    while (redis_.pending() > 0 && redis_.connected() && Clock::now() < deadline) {
        // The resignation may still be in hiredis's output buffer.
        std::vector<zmq::pollitem_t> items = {
            {nullptr, redis_.fd(), static_cast<short>(ZMQ_POLLIN | (redis_.wants_write() ? ZMQ_POLLOUT : 0)), 0}};
        zmq::poll(items, POLL_TICK);
        if (items[0].revents & ZMQ_POLLOUT) redis_.on_writable();
        if (items[0].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) redis_.on_readable();
    }
    log::info("stopped");
    return Exit::STOPPED;
}

void Broker::handle_waiting(zmq::socket_t& socket, const char* side, void (Broker::*handle)(const proto::Envelope&)) {
    for (int i = 0; i < MAX_BATCH; ++i) {
        auto received = proto::try_recv(socket, true);
        if (!received) return;
        if (received->envelope) (this->*handle)(*received->envelope);
        else dropped_.warn(fmt::format("malformed messages from the {}", side), Clock::now(),
                           "{}: dropped malformed message: {}", side, received->error);
    }
}

bool Broker::eval(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
                  RedisLink::Callback done) {
    if (token_.empty()) return false;  // not leading: nothing to write with
    args.push_back(token_);
    return run_script(script, std::move(keys), std::move(args), std::move(done));
}

void Broker::fenced_write(std::vector<std::string> command, std::string what) {
    eval(scripts::CALL, {}, std::move(command), [what = std::move(what)](redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_ERROR) log::error("{} failed: {}", what, reply_error(r));
    });
}

bool Broker::run_script(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
                        RedisLink::Callback done) {
    // EVALSHA: Redis runs the script it already compiled, and the script's text (up to 2 KB)
    // stays off the wire. A script's first call on a connection goes as EVAL, which caches it:
    // Redis runs a connection's commands in order, so every EVALSHA after it finds it. (Waiting
    // for a NOSCRIPT to send the EVAL would let a later call of another script overtake it: a
    // job's first chunk stored after its result, and dropped.) A cache flushed behind the
    // connection's back still answers NOSCRIPT, and the same call goes again as EVAL.
    auto sha = script_sha_.find(&script);
    if (sha == script_sha_.end()) sha = script_sha_.emplace(&script, sha1_hex(script)).first;
    // The arguments (every job's input or result in a batch) are moved, never copied: into
    // argv, and argv into the callback that may need it again for the EVAL.
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    const bool cached = scripts_sent_.insert(&script).second == false;
    argv.push_back(cached ? "EVALSHA" : "EVAL");
    argv.push_back(cached ? sha->second : script);
    argv.push_back(std::to_string(keys.size()));
    std::move(keys.begin(), keys.end(), std::back_inserter(argv));
    std::move(args.begin(), args.end(), std::back_inserter(argv));
    // Views first: moving argv into the callback moves its buffer, not the strings in it.
    const std::vector<std::string_view> views(argv.begin(), argv.end());
    // One callback per call, the hot path's only wrapper: it times the script, notices a FENCED
    // answer (scripts::HEAD: the lease is lost) and resends after a NOSCRIPT.
    auto retry = [this, &script, argv = std::move(argv), done = std::move(done), sent = Clock::now()](redisReply* r) mutable {
        if (r != nullptr) metrics_.script_took(script_name(script), Clock::now() - sent);
        const std::string_view error = r != nullptr && r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len)
                                                                                     : std::string_view();
        if (error.starts_with("FENCED")) lease_lost(std::string(error));
        if (error.starts_with("NOSCRIPT")) {
            argv[0] = "EVAL";
            argv[1] = script;
            // Rare (Redis's script cache flushed): the resent call's FENCED, if any, is noticed
            // by the next renewal instead.
            if (!redis_.command({argv.begin(), argv.end()}, std::move(done))) done(nullptr);
            return;
        }
        done(r);
    };
    const bool sent = redis_.command(views, std::move(retry));
    if (!sent && !cached) scripts_sent_.erase(&script);
    return sent;
}

bool Broker::eval_on_job(const std::string& script, const std::string& job_id, std::vector<std::string> args,
                         RedisLink::Callback done) {
    return eval(script, {keys::job(job_id)}, std::move(args), std::move(done));
}

std::int64_t Broker::now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Owner Broker::owner_of(const redisReply* const* fields) {
    return Owner{reply_text(fields[0]), reply_text(fields[1]),
                 static_cast<std::uint32_t>(std::strtoul(reply_text(fields[2]).c_str(), nullptr, 10))};
}

void Broker::resync() {
    sync_ = Sync::IN_PROGRESS;
    flows_live_ = 1;
    std::vector<std::string> args = {std::to_string(now_ms()), std::to_string(config_.events_maxlen),
                                     std::to_string(config_.job_ttl_s), std::to_string(config_.max_redeliveries)};
    for (std::string& job_id : jobs_.started_jobs()) args.push_back(std::move(job_id));
    const bool sent = eval(scripts::RECOVER, {}, std::move(args), [this](redisReply* r) {
        if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return resync_failed("recovering running jobs", r);
        if (r->integer > 0)
            log::warn("{} job(s) marked running had no worker here: put back in their queues", r->integer);
        store_types(config_.known_types);
        std::vector<std::string_view> argv = {"SMEMBERS", keys::TYPES};
        redis_.command(argv, [this](redisReply* types) {
            if (types == nullptr || types->type != REDIS_REPLY_ARRAY) return resync_failed("reading job types", types);
            std::vector<std::string> names;
            for (size_t i = 0; i < types->elements; ++i) names.push_back(reply_text(types->element[i]));
            load_queues(names);
        });
    });
    if (!sent) resync_failed("recovering running jobs", nullptr);
}

void Broker::resync_failed(const std::string& step, const redisReply* r) {
    sync_ = Sync::NONE;
    const std::string error = reply_error(r);
    if (resync_backoff_.count() == 0) {
        if (error.starts_with("LOADING"))
            log::warn("Redis is loading its data into memory: waiting for it before resyncing");
        else
            log::error("resync failed ({}): {}; retrying quietly until it succeeds", step, error);
    }
    resync_backoff_ = std::clamp(resync_backoff_ * 2, RESYNC_BACKOFF_MIN, RESYNC_BACKOFF_MAX);
    resync_at_ = Clock::now() + resync_backoff_;
}

void Broker::store_types(const std::vector<std::string>& types) {
    if (types.empty()) return;
    std::vector<std::string> command = {"SADD", std::string(keys::TYPES)};
    command.insert(command.end(), types.begin(), types.end());
    fenced_write(std::move(command), fmt::format("storing job type(s) {}", fmt::join(types, ", ")));
}

void Broker::load_queues(const std::vector<std::string>& types) {
    known_types_.insert(types.begin(), types.end());
    // Redis is the truth for what is queued; jobs held here (running, or waiting out a retry
    // backoff) are skipped. A submit acknowledged meanwhile is refused by push() as a duplicate.
    queues_ = JobQueues(config_.fair_share);
    // Each type's queue and the schedule load side by side; the last to come in ends the resync.
    auto remaining = std::make_shared<std::size_t>(types.size() + 2);
    auto loaded = [this, remaining] {
        if (--*remaining != 0 || sync_ != Sync::IN_PROGRESS) return;
        sync_ = Sync::DONE;
        served_ = true;
        resync_backoff_ = std::chrono::milliseconds(0);
        log::info("ready: {} job type(s) known, {} queued and {} scheduled job(s) loaded from Redis",
                  known_types_.size(), queues_.total(), schedule_.size());
    };
    load_schedule(loaded);
    load_budgets(true, loaded);
    for (const auto& type : types) {
        eval(scripts::LOAD_QUEUE, {keys::queue(type)}, {}, [this, type, loaded](redisReply* r) {
            if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return resync_failed("loading queue " + type, r);
            const std::unordered_set<std::string> held = jobs_.held_jobs();
            for (size_t i = 0; i + scripts::LOAD_QUEUE_STRIDE <= r->elements; i += scripts::LOAD_QUEUE_STRIDE) {
                std::string id = reply_text(r->element[i]);
                if (held.count(id) == 0)
                    queues_.push(type, id, std::atoi(reply_text(r->element[i + 1]).c_str()),
                                 owner_of(r->element + i + 2), reply_int(r->element[i + 5]));
            }
            loaded();
        });
    }
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
    for (const Delayed& retry : jobs_.take_due(now))
        queues_.push(retry.type, retry.job_id, retry.priority, retry.owner, now_ms());
    promote_due();
    settle_flows(now);
    poll_schedules(now);
    expire_due(now);
    dropped_.flush(now);
    check_storage(now);
    sweep_expired(now);
    cancel_abandoned(now);
    report_workers(now);
    report_metrics(now);
    report_queues(now);
    refresh_budgets(now);

}

void Broker::report_workers(Clock::time_point now) {
    if (now < next_worker_report_) return;
    next_worker_report_ = now + WORKER_REPORT_INTERVAL;
    std::string report = workers_.report(now, now_ms(), MAX_REPORTED_WORKERS);
    fenced_write({"SET", std::string(keys::WORKERS), std::move(report), "PX", std::to_string(WORKER_REPORT_TTL.count())},
                 "storing the worker report");
}

void Broker::report_metrics(Clock::time_point now) {
    if (now < next_metrics_report_) return;
    next_metrics_report_ = now + METRICS_REPORT_INTERVAL;
    BrokerMetrics::Now held{{}, {}, jobs_.delayed(), workers_.all().size()};
    for (const auto& [type_and_tenant, count] : jobs_.running_by_type()) held.running[type_and_tenant.first] += count;
    for (const std::string& type : known_types_) {
        held.queued[type] = queues_.depth(type);
        held.running.try_emplace(type, 0);
    }
    std::string text = metrics_.render(held);
    fenced_write({"SET", std::string(keys::BROKER_METRICS), std::move(text), "PX", std::to_string(METRICS_REPORT_TTL.count())},
                 "storing the metrics");
}

void Broker::sweep_expired(Clock::time_point now) {
    if (sweeping_ || now < next_sweep_) return;
    sweeping_ = true;
    const bool sent = eval(scripts::SWEEP, {}, {std::to_string(now_ms()), std::to_string(SWEEP_BATCH)}, [this](redisReply* r) {
        sweeping_ = false;
        const bool more = r != nullptr && r->type == REDIS_REPLY_INTEGER && r->integer >= SWEEP_BATCH;
        next_sweep_ = Clock::now() + (more ? std::chrono::milliseconds(0) : SWEEP_INTERVAL);
        if (r != nullptr && r->type == REDIS_REPLY_ERROR) log::error("sweep of expired jobs failed: {}", reply_error(r));
    });
    if (!sent) sweeping_ = false;
}

void Broker::check_storage(Clock::time_point now) {
    if (now < next_storage_check_) return;
    next_storage_check_ = now + STORAGE_CHECK_INTERVAL;
    std::vector<std::string_view> argv = {"INFO", "memory"};
    redis_.command(argv, [this](redisReply* r) {
        const auto use = r != nullptr && r->type == REDIS_REPLY_STRING ? parse_info_memory({r->str, r->len}) : std::nullopt;
        if (!use || !storage_.update(*use)) return;
        const double used_mb = static_cast<double>(use->used) / 1e6, max_mb = static_cast<double>(use->max) / 1e6;
        if (storage_.full())
            log::warn("Redis holds {:.0f} of its {:.0f} MB maxmemory ({}% or more): new jobs are refused "
                      "(507 storage_full) until it is below {}%", used_mb, max_mb, storage_.full_percent(),
                      storage_.full_percent() - StorageWatch::RELIEF_PERCENT);
        else
            log::info("Redis holds {:.0f} of its {:.0f} MB maxmemory: new jobs are accepted again", used_mb, max_mb);
    });
}

// A worker that heartbeats but never answers (a stuck handler) loses the job at its lease
// deadline: the attempt ends as lost, the worker is told to cancel it and keeps the slot until
// it answers or dies.
void Broker::expire_leases(Clock::time_point now) {
    for (const auto& [job_id, run] : jobs_.expire_leases(now)) {
        log::warn("job {} attempt {}: lease expired without an answer", job_id, run.attempt);
        if (WorkerInfo* worker = workers_.find(run.identity))
            send_to_worker(*worker, proto::Command::CANCEL_JOB, proto::encode_body(proto::CancelJob{job_id, run.attempt}));
        fail_job(job_id, run, fmt::format("lease expired: no answer within timeout_s + {} s",
                                          std::chrono::duration_cast<std::chrono::seconds>(LEASE_GRACE).count()),
                 "lost", true);
    }
}

}  // namespace sluice::broker
