// The broker: owns every job state change. One thread runs `run()` and owns all state, both
// ZMQ sockets and the Redis connection; nothing here is thread-safe except `endpoints()` after
// construction. See schemas/PROTOCOL.md for the messages and the job state machine.
#pragma once

#include "rate_limits.hpp"
#include "batches.hpp"
#include "budgets.hpp"
#include "config.hpp"
#include "errors.hpp"
#include "job_queue.hpp"
#include "job_table.hpp"
#include "metrics.hpp"
#include "queue_report.hpp"

#include "rate_limited_log.hpp"
#include "redis_link.hpp"
#include "refusal_log.hpp"
#include "schedule.hpp"
#include "span_exporter.hpp"
#include "storage_watch.hpp"
#include "worker_pool.hpp"
#include "wire.hpp"

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::broker {

class Broker {
public:
    // Makes both sockets, as CURVE servers with the ZAP handler first when config.curve is set.
    // They are bound only once this broker holds the lease (run()).
    explicit Broker(BrokerConfig config);

    // The configuration, with the endpoints as bound once this broker has led (a `*` port
    // resolved): a broker that steps down starts over on the ports its peers know.
    const BrokerConfig& config() const { return config_; }

    enum class Exit { STOPPED, STEPPED_DOWN };
    // Campaigns for the lease (README.md, "A standby broker") until it wins it, then binds both
    // sockets (throws zmq::error_t if an endpoint cannot be bound), prints the endpoints bound
    // on stdout ("sluice-broker frontend F backend B", a `*` port resolved) and serves. Returns
    // STOPPED once `stop_fd` (a signalfd or pipe) becomes readable, after giving the lease up and
    // waiting a short while for Redis replies still owed, so every write that was made is also
    // acknowledged; STEPPED_DOWN when the lease was lost to another broker: this object's state
    // is stale, and the caller starts over with a new Broker, a standby.
    Exit run(int stop_fd);

private:
    enum class Sync { NONE, IN_PROGRESS, DONE };

    // ---- the loop and Redis (broker.cpp) ----
    // Binds both sockets and says where (the first time this broker leads).
    void bind_sockets();
    // Handles up to MAX_BATCH messages waiting on `socket` with `handle`; logs malformed ones.
    void handle_waiting(zmq::socket_t& socket, const char* side, void (Broker::*handle)(const proto::Envelope&));
    // Runs one Lua script with this broker's fencing token as its last argument (scripts::HEAD);
    // returns false (without calling `done`) when Redis is unreachable or this broker does not
    // lead. `script` must be one of the scripts:: constants (its address keys the SHA cache).
    bool eval(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
              RedisLink::Callback done);
    // eval() without the token: the lease's own scripts (lease_scripts.hpp). A FENCED reply
    // ends the leadership (lease_lost) before `done` sees it.
    bool run_script(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
                    RedisLink::Callback done);
    // One write command through scripts::CALL (fenced); errors are logged as `what` failing.
    void fenced_write(std::vector<std::string> command, std::string what);
    // eval() of a script whose one key is the hash of job `job_id`.
    bool eval_on_job(const std::string& script, const std::string& job_id, std::vector<std::string> args,
                     RedisLink::Callback done);
    // Wall-clock milliseconds since the epoch: the times stored in Redis.
    static std::int64_t now_ms();
    // The owner of a job as a script returns it: tenant, concurrency key and limit, three
    // strings from `fields` on (LOAD_QUEUE, RETRY).
    static Owner owner_of(const redisReply* const* fields);
    // Brings memory and Redis into agreement (at start and after Redis comes back): jobs
    // marked running that no worker here holds go back to their queues, then queues reload.
    void resync();
    // A step of the resync failed: says so once (LOADING: Redis is still reading its AOF), then
    // retries quietly after a backoff until one succeeds.
    void resync_failed(const std::string& step, const redisReply* r);
    void load_queues(const std::vector<std::string>& types);
    // Adds job types to sluice:types (declared by a worker, or listed in config.known_types).
    void store_types(const std::vector<std::string>& types);
    // Stores each input schema a READY declares (bounded, opaque) in keys::TYPE_SCHEMAS when it
    // differs from the stored one, and logs the change. An empty schema declares nothing: the
    // stored one stays (a native worker and a typed Python worker may serve one type).
    void store_schemas(const std::string& worker, const proto::Ready& msg);
    // Heartbeats out, silent and departed workers dropped, leases expired, retries released.
    void run_timers(Clock::time_point now);
    void expire_leases(Clock::time_point now);
    // Once a STORAGE_CHECK_INTERVAL: reads INFO memory into storage_ (storage_watch.hpp).
    void check_storage(Clock::time_point now);
    // Gives the bytes of jobs Redis has expired back to their tenants (scripts::SWEEP).
    void sweep_expired(Clock::time_point now);
    // Once a second: writes the worker report GET /v1/workers reads (keys::WORKERS).
    void report_workers(Clock::time_point now);
    // Once a second: writes the broker's metrics GET /metrics appends (keys::BROKER_METRICS).
    void report_metrics(Clock::time_point now);

    // ---- schedules, deadlines and the queue report (timed.cpp) ----
    // Reads every scheduled job into schedule_ (a step of the resync); `done` runs once it is in.
    void load_schedule(std::function<void()> done);
    // Queues the scheduled jobs that are due (scripts::PROMOTE), once one is.
    void promote_due();
    // Once a DEADLINE_CHECK_INTERVAL: fails the jobs past their expire_at_ms that have not
    // started (scripts::EXPIRE_DUE) and takes them out of memory.
    void expire_due(Clock::time_point now);
    // A job ended succeeded or failed: counted in the queue report's last minute.
    void record_outcome(const std::string& type, const std::string& tenant, bool succeeded);
    // Once a second: writes the queue report GET /v1/queues reads (keys::QUEUES).
    void report_queues(Clock::time_point now);

    // ---- token budgets and provider 429s (budget_side.cpp) ----
    // Keeps what a READY says of each type's model and token estimate (an invalid or missing
    // declaration declares none: the type's jobs are not budgeted).
    void declare_models(const std::string& worker, const proto::Ready& msg);
    // The token estimator of `type`, nullptr for a type no worker declared a model for.
    const TokenEstimator* estimator_of(const std::string& type) const;
    // Reads the budgets from Redis (scripts::BUDGET_LOAD) into budgets_, and with `resync` this
    // window's spend and the paused models too (a broker that leads writes every change of them
    // itself, so later reads would only bring back values older than its own); `done` (when set)
    // runs once they are in, or at once when they could not be asked for.
    void load_budgets(bool resync, std::function<void()> done);
    // Pauses the models BUDGET_LOAD found paused in Redis (model, wall-clock end) whose pause
    // has not ended: a provider's 429 the broker that led before this one was told of.
    void resume_pauses(const redisReply* pauses);
    // Once a second: reloads the budgets (the api changes them) and writes the budget report.
    void refresh_budgets(Clock::time_point now);
    // Writes a change of spend through to its window's key (scripts::BUDGET_SPEND).
    void store_spend(const std::optional<Budgets::Change>& change);
    // A job of `type` started with `input`: its reservation becomes the estimate of that input.
    void correct_estimate(const std::string& job_id, const std::string& type, std::string_view input);
    // A job of `type` ended its attempt saying what it used: its reservation becomes that, and
    // what it used past its declared estimate pads the type's next estimates (shortfall_).
    void settle_tokens(const std::string& job_id, const std::string& type, std::uint32_t prompt_tokens,
                       std::uint32_t completion_tokens);
    // The provider refused the attempt for now: back to the queue without spending an attempt,
    // and the type's model paused for the retry_after it says (at most MAX_MODEL_PAUSE).
    void handle_rate_limited(const std::string& peer, const proto::RateLimited& msg);

    // ---- cron schedules (cron_fire.cpp) ----
    // Once a CRON_POLL_INTERVAL while synced: reads the schedules due (scripts::CRON_DUE) and
    // fires each one's due tick (fire_schedule), one poll and its fires in flight at a time.
    void poll_schedules(Clock::time_point now);
    // Claims the due ticks of one schedule (a CRON_DUE row from `row` on) and fires at most one
    // of them, as its `missed` option says (scripts::FIRE); a fired job joins its queue here,
    // unless it joined a job that runs for it (options.dedupe).
    void fire_schedule(const redisReply* const* row);

    // ---- the lease (lease.cpp) ----
    // Once a turn: campaigns while not leading (every lease_ttl / 8), renews while leading
    // (every lease_ttl / 4), one script in flight at a time.
    void keep_lease(Clock::time_point now);
    // Serving is safe: leading, and the last renewal that succeeded was sent less than a
    // lease_ttl ago, so no standby can have taken over meanwhile.
    bool lease_valid(Clock::time_point now) const;
    // The lease is gone to another broker (a refused renewal, a FENCED script): logs why and
    // ends run() with STEPPED_DOWN after this turn.
    void lease_lost(const std::string& why);
    // A CAMPAIGN or RENEW that got no answer of its kind (`what`): logged once per kind of error.
    void lease_failed(const char* what, const redisReply* r);
    // Gives the lease up (scripts::RESIGN) at shutdown.
    void resign();

    // ---- ZAP, who may connect (zap.cpp) ----
    // ZAP domains (RFC 27) of the two sockets: the handler picks the allow-list by domain.
    static constexpr const char* API_DOMAIN = "sluice-api";
    static constexpr const char* WORKER_DOMAIN = "sluice-worker";
    // Answers the waiting ZAP requests: a CURVE client is admitted when its public key is on
    // the allow-list of the socket it reached; a refusal is logged (rate-limited by refusals_).
    void handle_zap();

    // ---- api side (api_side.cpp) ----
    void handle_frontend(const proto::Envelope& env);
    // Answers any api request 503 redis_unavailable, doing nothing: the lease is in doubt.
    void refuse_in_doubt(const proto::Envelope& env);
    // Validates a SUBMIT and adds it to the turn's batch; flush_submits() stores the batch.
    void handle_submit(const std::string& peer, proto::Submit msg);
    // Why a SUBMIT breaks the limits (common/limits.hpp, names.hpp), or nullopt when it does not.
    std::optional<std::string> submit_problem(const proto::Submit& msg) const;
    // Why a valid SUBMIT cannot be stored now (unknown type, full queue, the tenant's queued jobs
    // (counting `more` jobs of the same flow already checked), Redis out of reach or full): the
    // code and message to answer, or nullopt.
    std::optional<std::pair<errors::Code, std::string>> admission_refusal(const proto::Submit& msg, std::size_t more = 0);
    // The batch item of a SUBMIT that passed both checks, counted as on its way to Redis until
    // stored() says it is there.
    SubmitItem submit_item(const std::string& peer, proto::Submit msg);
    // Queued and scheduled jobs of `tenant`, the SUBMITs on their way to Redis included.
    std::size_t tenant_queued(const std::string& tenant) const;
    void flush_submits();
    // Sends the success answers (peer, REPLY) of a stored batch of submits, once
    // config.redis_min_replicas replicas hold what this connection wrote (WAIT); when they do
    // not, each answers 503 not_replicated instead. At once without min replicas.
    void send_when_replicated(std::vector<std::pair<std::string, proto::Reply>> acks);
    // Sends one WAIT for every answer in waiting_acks_ (send_when_replicated).
    void wait_replicas();
    // A SUBMIT's batch came back from Redis (or could not be sent): the SUBMIT no longer counts
    // as on its way.
    void stored(const SubmitItem& job);
    void handle_cancel(const std::string& peer, const proto::Cancel& msg);
    // A job's cancel was stored in Redis, the job having been `was` ("queued", "scheduled" or
    // "running"): takes it out of its queue, the retry backlog or the schedule, or tells its
    // worker to stop it. Returns
    // false for any other `was` (the script failed).
    bool forget_canceled(const std::string& id, std::string_view was);
    // Once a second: cancels the jobs whose followers have been gone for their grace period
    // (options.on_disconnect "cancel", scripts::ABANDON).
    void cancel_abandoned(Clock::time_point now);
    void handle_retry(const std::string& peer, const proto::Retry& msg);
    void handle_ping(const std::string& peer, const proto::Ping& msg);
    // Answers an api request (proto::Reply). accept: done, 200 with the job's state now (none for
    // PING); refuse: not done, `status` and a stable `code`. A stored submit's answer is made by
    // stored_reply() and sent by send_when_replicated().
    void accept(const std::string& peer, std::uint64_t req_id, std::string job_id = {}, std::string state = {});
    // A submit answered from the cache (options.cache_ttl_s): `cached_id`, a job of the same
    // tenant, type and input that succeeded, stands for it; nothing was stored, so nothing
    // waits for replicas.
    void accept_cached(const std::string& peer, std::uint64_t req_id, std::string cached_id);
    void refuse(const std::string& peer, std::uint64_t req_id, const errors::Code& code, std::string message,
                std::string job_id = {});
    void send_reply(const std::string& peer, proto::Reply msg);
    // refuse() of a request whose script failed: 503 broker_unavailable when the script was
    // fenced (this broker lost the lease: nothing was written, and the leader will take the
    // request again), else 503 redis_unavailable.
    void refuse_unstored(const std::string& peer, std::uint64_t req_id, const std::string& what,
                         std::string job_id = {});

    // ---- flows (flows.cpp) ----
    // A FLOW: the parent and its children are checked as SUBMITs, then added to the turn's
    // batch together (the parent first), so one script stores all of them or none.
    void handle_flow(const std::string& peer, const proto::Flow& msg);
    // A worker's SPAWN: its running attempt's children are stored (scripts::SPAWN) and queued,
    // and the job waits for them; invalid children fail the job without a retry.
    void handle_spawn(const std::string& peer, const proto::Spawn& msg);
    // While any flow is unsettled (flows_live_), once a FLOW_SETTLE_INTERVAL: scripts::SETTLE
    // moves the parents whose children ended on, queueing or failing them, and this broker's
    // memory follows (parents queued, canceled children forgotten).
    void settle_flows(Clock::time_point now);
    // The children's outcomes of a START's reply (five per child, scripts::START) as the JOB's
    // `children` field: a msgpack array of maps, each result inlined as the value it encodes.
    static proto::Bytes encode_children(const redisReply* outcomes);

    // ---- worker side (worker_side.cpp) ----
    void handle_backend(const proto::Envelope& env);
    void handle_ready(const std::string& peer, const proto::Ready& msg);
    void handle_event(const std::string& peer, const std::string& job_id, std::uint32_t attempt,
                      std::vector<std::string> fields);
    // True (and the report dropped with a rate-limited warning) when a CHUNK's data or a
    // PROGRESS message `payload` is past config_.max_event_bytes.
    template <class Report>
    bool event_too_large(const char* what, const Report& msg, const std::string& payload);
    // Adds a RESULT to the turn's batch; flush_results() stores the batch. A RESULT past
    // config_.max_result_bytes fails the job instead, without a retry.
    void handle_result(const std::string& peer, proto::Result msg);
    void flush_results();
    void handle_failure(const std::string& peer, const proto::Failure& msg);
    void handle_canceled(const std::string& peer, const proto::Canceled& msg);
    // A report about an attempt that is not the job's current one (or not held by its sender):
    // dropped, with a rate-limited warning.
    void drop_stale(std::string_view what, const std::string& job_id, std::uint32_t attempt);
    void send_to_worker(WorkerInfo& worker, proto::Command command, const std::string& body);
    // Ends an attempt without a result. `outcome` is "failed" (the handler failed), "lost"
    // (the worker died, or the lease expired) or "rate_limited" (the provider refused it for
    // now). A requeued job waits `delay` when given, else its retry backoff.
    void fail_job(const std::string& job_id, const Attempt& run, const std::string& error,
                  const char* outcome, bool retryable,
                  std::optional<std::chrono::milliseconds> delay = std::nullopt);
    void lose_workers(std::vector<WorkerInfo> gone, const char* why);
    // Wakes the jobs of the concurrency keys whose jobs ended, then hands queued jobs to workers
    // with credit. start_job() assigns one; flush_starts() records the turn's starts in Redis,
    // then started() sends each JOB (or undoes the assignment).
    void dispatch();
    void start_job(WorkerInfo& worker, const std::string& type, JobQueues::Popped job);
    void flush_starts();
    void started(const StartItem& job, const redisReply* r);
    // Exports the span of `job`'s wait in its queue, a child of the api's submit span
    // (`traceparent`), and returns the traceparent the worker's spans descend from: that span's,
    // or `traceparent` itself when spans are off or the trace is not sampled.
    std::string dispatch_span(const StartItem& job, const WorkerInfo& worker, std::uint32_t attempt,
                              const std::string& traceparent);

    BrokerConfig config_;
    zmq::context_t context_;
    // The ZAP handler's REP socket (inproc://zeromq.zap.01), served by this loop; only with CURVE.
    std::optional<zmq::socket_t> zap_;
    RefusalLog refusals_;
    zmq::socket_t frontend_;
    zmq::socket_t backend_;

    // This turn's batches (batches.hpp), each stored by one script call at the end of its step.
    std::vector<SubmitItem> submits_;
    // SUBMITs accepted but not yet stored, per type and per tenant (only tenants with some),
    // counted against max_queue_depth and tenant_max_queued.
    std::unordered_map<std::string, std::size_t> storing_;
    std::unordered_map<std::string, std::size_t> storing_tenants_;
    // Submits per second per API key (the SUBMIT says the key's limit): every api instance's
    // submits pass here, so the limit holds across them.
    RateLimits submit_limits_;
    std::vector<StartItem> starts_;
    std::vector<ResultItem> results_;
    JobQueues queues_;
    Schedule schedule_;
    // Flows not settled in Redis (K.flows) as the last SETTLE counted them; 1 at a resync, so
    // the first SETTLE counts them.
    std::size_t flows_live_ = 0;
    bool settling_ = false;  // a SETTLE is in flight
    Clock::time_point next_settle_{};
    bool promoting_ = false;  // a PROMOTE is in flight
    // Cron schedules (cron_fire.cpp): CRON_DUE and FIRE calls in flight, and the next poll.
    std::size_t cron_calls_ = 0;
    Clock::time_point next_cron_poll_{};
    bool expiring_ = false;   // an EXPIRE_DUE is in flight
    Clock::time_point next_deadline_check_{};
    RecentOutcomes outcomes_;
    Clock::time_point next_queue_report_{};
    std::set<std::string> known_types_;
    // Each type's input schema as this broker last stored or found it in Redis: a READY that
    // declares the same again costs nothing.
    std::unordered_map<std::string, std::string> type_schemas_;
    // Token budgets and model pauses; each type's model and estimate as its workers last
    // declared them, and the prompt tokens of the type's last started job (what dispatch
    // reserves for the next before its input is read).
    Budgets budgets_;
    std::unordered_map<std::string, TokenEstimator> estimators_;
    std::unordered_map<std::string, std::uint64_t> typical_prompt_;
    // Per type, how far its jobs' usage recently went past their declared estimate (a prompt
    // template or system prompt the input does not show): added to its estimates, so a budget
    // holds from the second job on. Follows a larger shortfall at once, a smaller one by 1/8
    // per job.
    std::unordered_map<std::string, std::uint64_t> shortfall_;
    Clock::time_point next_budget_refresh_{};
    bool budgets_loading_ = false;  // a BUDGET_LOAD is in flight
    WorkerPool workers_;
    JobTable jobs_;  // running attempts and delayed retries; after workers_, whose credit it keeps
    std::unordered_map<const std::string*, std::string> script_sha_;
    std::unordered_set<const std::string*> scripts_sent_;  // called on this Redis connection already
    Sync sync_ = Sync::NONE;
    bool served_ = false;  // synced once: from then on the sockets are served, Redis up or not
    // Resync backoff: zero until a resync fails, then doubling; no resync before resync_at_.
    std::chrono::milliseconds resync_backoff_{0};
    Clock::time_point resync_at_{};
    // Warnings about what peers send (malformed, stale, oversize): rate-limited per kind.
    log::RateLimited dropped_;
    // SLUICE_REDIS_MIN_REPLICAS (api_side.cpp): answers waiting for the next WAIT, whether one
    // is in flight (Redis holds every later command of the connection until it returns, so one
    // at a time covers all batches since), and whether the last one found too few replicas.
    std::vector<std::pair<std::string, proto::Reply>> waiting_acks_;
    bool replica_wait_in_flight_ = false;
    bool replicas_missing_ = false;
    bool was_connected_ = false;
    StorageWatch storage_;
    Clock::time_point next_storage_check_{};
    bool sweeping_ = false;  // a SWEEP is in flight
    Clock::time_point next_sweep_{};
    Clock::time_point next_worker_report_{};
    BrokerMetrics metrics_;
    Clock::time_point next_metrics_report_{};
    bool abandoning_ = false;  // an ABANDON is in flight
    Clock::time_point next_abandon_{};
    std::unique_ptr<trace::SpanExporter> spans_;  // with config_.tracing only
    // The lease: this broker's fencing token while it leads ("EPOCH ID"), empty before.
    std::string token_;
    bool lease_in_flight_ = false;  // a CAMPAIGN or RENEW is on its way
    Clock::time_point lease_sent_{};  // when the last one was sent
    Clock::time_point next_lease_step_{};
    // When the last renewal (or the campaign) that succeeded was sent: the lease runs until at
    // least lease_ttl after it.
    Clock::time_point renewed_sent_{};
    bool lapsed_ = false;  // leading, but not renewed for a lease_ttl: not serving
    bool stepping_down_ = false;
    bool bound_ = false;
    std::string last_holder_;  // the holder a lost campaign last saw, to log each change once
    std::string lease_error_;  // the first word of the last lease script's error, to log each kind once

    // Declared last so it is destroyed first: callbacks it still owes run while the rest lives.
    RedisLink redis_;
};

}  // namespace sluice::broker
