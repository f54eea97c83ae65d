// Worker runtime (see runtime.hpp): the I/O loop that owns the broker socket, the handler pool,
// and the bookkeeping that turns a finished handler into RESULT, FAILURE or CANCELED.
//
// A handler that ignores its stop token cannot be killed (it is a thread): once stop_grace has
// passed the runtime reports the job without it (so the broker can move on) and logs an error;
// that pool thread stays busy, and jobs that arrive meanwhile wait in the local queue.
#include "runtime.hpp"

#include "log.hpp"
#include "wire.hpp"

#include <unistd.h>

#include <zmq.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sluice::worker {

std::string default_worker_name() {
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "worker");
    return fmt::format("{}-{}", host, static_cast<long>(getpid()));
}

std::optional<msgpack::object_handle> unpack(const proto::Bytes& bytes) noexcept {
    try {
        std::size_t offset = 0;
        msgpack::object_handle handle = msgpack::unpack(bytes.data(), bytes.size(), offset);
        if (offset != bytes.size()) return std::nullopt;
        return handle;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

namespace detail {

// Kinds of messages on the inproc pipe from handler threads (and stop()) to the I/O thread.
// Every pipe message is three frames: ticket (8 bytes), kind (1 byte), body.
enum class Kind : std::uint8_t {
    PROGRESS = 1,    // body: encoded proto::Progress
    CHUNK = 2,       // body: encoded proto::Chunk
    DONE_OK = 3,     // body: the result bytes
    DONE_ERROR = 4,  // body: msgpack [message, retryable]
    STOP = 5,        // from stop(); ticket 0, empty body
};

// One pool thread's end of the pipe. The mutex lets a handler call progress/emit from threads
// of its own; a ZMQ socket must never be used by two threads at once.
struct Outbox {
    std::mutex mutex;
    zmq::socket_t socket;

    void push(std::uint64_t ticket, Kind kind, std::string_view body) {
        std::lock_guard lock(mutex);
        const auto k = static_cast<std::uint8_t>(kind);
        // Blocking sends: if the I/O thread falls behind, handlers wait (backpressure) rather
        // than messages being dropped or buffered without bound.
        (void)socket.send(zmq::buffer(&ticket, sizeof ticket), zmq::send_flags::sndmore);
        (void)socket.send(zmq::buffer(&k, 1), zmq::send_flags::sndmore);
        (void)socket.send(zmq::buffer(body), zmq::send_flags::none);
    }
};

}  // namespace detail

using detail::Kind;

void JobContext::progress(double fraction, std::string_view message) const {
    if (!std::isfinite(fraction)) fraction = 0;
    fraction = std::clamp(fraction, 0.0, 1.0);
    proto::Progress msg{job_.job_id, job_.attempt, fraction, std::string(message)};
    outbox_.push(ticket_, Kind::PROGRESS, proto::encode_body(msg));
}

void JobContext::emit(std::string_view chunk) const {
    proto::Chunk msg{job_.job_id, job_.attempt, std::string(chunk)};
    outbox_.push(ticket_, Kind::CHUNK, proto::encode_body(msg));
}

namespace {

constexpr const char* PIPE_ENDPOINT = "inproc://sluice-worker-pipe";
// Linger on the broker socket when the worker stops: long enough to flush the last RESULTs and
// DISCONNECT to a live broker, short enough not to hang on a dead one.
constexpr int FINAL_LINGER_MS = 2000;
// Most messages read from one socket per loop pass, so a flood cannot starve the timers.
constexpr int MAX_BATCH = 100;

// One accepted job, shared by the I/O thread and the pool thread that runs it.
struct Task {
    proto::Job job;
    std::uint64_t ticket = 0;
    std::stop_source stop;
    Clock::time_point deadline = Clock::time_point::max();
    const Handler* handler = nullptr;
};

// Jobs waiting for a pool thread. Thread-safe.
class TaskQueue {
public:
    void push(std::shared_ptr<Task> task) {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
    }
    // Blocks for the next task; returns nullptr once the queue is closed.
    std::shared_ptr<Task> pop() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return closed_ || !tasks_.empty(); });
        if (closed_) return nullptr;
        auto task = std::move(tasks_.front());
        tasks_.pop_front();
        return task;
    }
    // Drops tasks still waiting (the I/O loop has already reported them) and wakes every thread.
    void close() {
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
            tasks_.clear();
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Task>> tasks_;
    bool closed_ = false;
};

// Why the runtime triggered a job's stop token; decides what is reported when it ends.
enum class StopReason { NONE, CANCEL, TIMEOUT, SHUTDOWN, SESSION_LOST };

// The I/O thread's record of a job it handed to the pool.
struct InFlight {
    std::shared_ptr<Task> task;
    std::uint64_t session = 0;  // connection it arrived on; answers to older ones are dropped
    StopReason stop = StopReason::NONE;
    Clock::time_point hard_deadline = Clock::time_point::max();  // report without the handler
    bool reported = false;  // terminal message sent (or not owed: session lost)
};

}  // namespace

struct Worker::Core {
    explicit Core(WorkerConfig c) : config(std::move(c)) {
        if (config.name.empty()) config.name = default_worker_name();
    }

    WorkerConfig config;
    std::map<std::string, Handler> handlers;
    zmq::context_t ctx{1};
    TaskQueue queue;
    std::vector<std::thread> pool;
    std::thread io;

    std::mutex stop_mutex;  // guards started, stopped, clean
    bool started = false;
    bool stopped = false;
    bool clean = true;

    // ---- I/O thread only (set up by start() before the thread exists) ----
    std::optional<zmq::socket_t> dealer;
    std::optional<zmq::socket_t> pipe;  // PULL
    std::map<std::uint64_t, InFlight> in_flight;  // by ticket
    std::uint64_t next_ticket = 1;
    std::uint64_t session = 1;
    bool stopping = false;
    bool drain_cancelled = false;
    Clock::time_point drain_deadline = Clock::time_point::max();
    Clock::time_point last_send{};
    Clock::time_point last_recv{};
    bool io_clean = true;

    // Pool thread body: runs tasks until the queue closes.
    void run_pool_thread();

    // I/O thread body and its steps.
    void run_io();
    void connect_dealer();
    void reconnect(std::string_view why);
    template <class T>
    void send(const T& msg);
    void send_terminal(const InFlight& entry, StopReason reason, const JobResult* outcome);
    void handle_broker_message(const proto::Envelope& env);
    void handle_job(const proto::Envelope& env);
    void handle_cancel_job(const proto::Envelope& env);
    void handle_disconnect();
    void handle_pipe_message(std::uint64_t ticket, Kind kind, std::string body);
    void handle_done(std::uint64_t ticket, const JobResult& outcome);
    void begin_stop();
    void run_timers(Clock::time_point now);
    bool finished(Clock::time_point now) const;
    Clock::time_point next_wakeup(Clock::time_point now) const;
    std::size_t jobs_held() const;
};

// ---- pool threads ----

void Worker::Core::run_pool_thread() {
    detail::Outbox outbox{{}, zmq::socket_t(ctx, zmq::socket_type::push)};
    outbox.socket.set(zmq::sockopt::linger, 0);
    outbox.socket.connect(PIPE_ENDPOINT);
    while (auto task = queue.pop()) {
        std::optional<JobResult> outcome;
        if (task->stop.stop_requested()) {
            // Cancelled while waiting for a thread: the I/O thread decides what to report.
            outcome = JobResult::failure("stopped before it started", false);
        } else {
            JobContext context(task->job, task->ticket, task->stop.get_token(), task->deadline,
                               outbox);
            try {
                outcome = (*task->handler)(context);
            } catch (const std::exception& e) {
                outcome = JobResult::failure(fmt::format("handler raised: {}", e.what()), true);
            } catch (...) {
                outcome = JobResult::failure("handler raised a non-standard exception", true);
            }
        }
        if (outcome->ok()) {
            const proto::Bytes& r = outcome->result();
            outbox.push(task->ticket, Kind::DONE_OK, std::string_view(r.data(), r.size()));
        } else {
            msgpack::sbuffer buffer;
            msgpack::packer<msgpack::sbuffer> packer(buffer);
            packer.pack_array(2);
            packer.pack(outcome->error().message);
            packer.pack(outcome->error().retryable);
            outbox.push(task->ticket, Kind::DONE_ERROR,
                        std::string_view(buffer.data(), buffer.size()));
        }
    }
}

// ---- I/O thread ----

template <class T>
void Worker::Core::send(const T& msg) {
    if (!proto::send(*dealer, msg))
        log::warn("dropped {}: broker socket full",
                  proto::command_name(static_cast<std::uint8_t>(T::command)));
    last_send = Clock::now();
}

void Worker::Core::connect_dealer() {
    dealer.emplace(ctx, zmq::socket_type::dealer);
    dealer->set(zmq::sockopt::linger, 0);
    dealer->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(config.max_input_bytes + limits::FRAME_HEADROOM));
    if (config.curve_keys) curve::make_client(*dealer, *config.curve_keys);
    dealer->connect(config.broker_endpoint);
    proto::Ready ready;
    ready.worker_name = config.name;
    ready.runtime = "cpp";
    for (const auto& [type, handler] : handlers) ready.types.push_back(type);
    ready.concurrency = config.concurrency;
    send(ready);
    last_recv = Clock::now();  // a fresh connection gets a full liveness period
}

// A new socket (new identity) rather than READY on the old one: anything the broker queued for
// the old session (more DISCONNECTs, stale JOBs) is discarded with it. The broker has put the
// jobs of the old session back in their queues, so their handlers are stopped and their
// answers dropped.
void Worker::Core::reconnect(std::string_view why) {
    log::warn("reconnecting to {}: {}", config.broker_endpoint, why);
    const auto now = Clock::now();
    for (auto& [ticket, entry] : in_flight) {
        if (entry.reported) continue;
        entry.reported = true;
        entry.stop = StopReason::SESSION_LOST;
        entry.hard_deadline = now + config.stop_grace;
        entry.task->stop.request_stop();
    }
    ++session;
    dealer.reset();
    connect_dealer();
}

std::size_t Worker::Core::jobs_held() const {
    return static_cast<std::size_t>(
        std::count_if(in_flight.begin(), in_flight.end(), [&](const auto& kv) {
            return kv.second.session == session && !kv.second.reported;
        }));
}

void Worker::Core::send_terminal(const InFlight& entry, StopReason reason,
                                 const JobResult* outcome) {
    const proto::Job& job = entry.task->job;
    switch (reason) {
        case StopReason::CANCEL:
            send(proto::Canceled{job.job_id, job.attempt});
            return;
        case StopReason::TIMEOUT:
            send(proto::Failure{job.job_id, job.attempt,
                                fmt::format("timeout after {} s", job.timeout_s), true});
            return;
        case StopReason::SHUTDOWN:
            if (outcome && outcome->ok()) break;  // it finished anyway: keep the result
            send(proto::Failure{job.job_id, job.attempt, "worker shut down before the job finished",
                                true});
            return;
        case StopReason::SESSION_LOST:
            return;  // not owed: the broker already put the job back
        case StopReason::NONE:
            break;
    }
    if (outcome == nullptr) return;
    if (outcome->ok())
        send(proto::Result{job.job_id, job.attempt, outcome->result()});
    else
        send(proto::Failure{job.job_id, job.attempt, outcome->error().message,
                            outcome->error().retryable});
}

void Worker::Core::handle_broker_message(const proto::Envelope& env) {
    switch (static_cast<proto::Command>(env.command)) {
        case proto::Command::JOB: handle_job(env); return;
        case proto::Command::CANCEL_JOB: handle_cancel_job(env); return;
        case proto::Command::DISCONNECT: handle_disconnect(); return;
        case proto::Command::HEARTBEAT: return;  // liveness already refreshed
        default:
            log::warn("dropped unexpected {} from broker", proto::command_name(env.command));
    }
}

void Worker::Core::handle_job(const proto::Envelope& env) {
    auto job = proto::decode_body<proto::Job>(env.body);
    if (!job) {
        log::warn("dropped malformed JOB ({} bytes)", env.body.size());
        return;
    }
    if (stopping) {
        send(proto::Failure{job->job_id, job->attempt, "worker is shutting down", true});
        return;
    }
    auto handler = handlers.find(job->type);
    if (handler == handlers.end()) {
        send(proto::Failure{job->job_id, job->attempt,
                            fmt::format("worker {} has no handler for job type '{}'", config.name,
                                        job->type),
                            false});
        return;
    }
    for (const auto& [ticket, entry] : in_flight) {
        if (entry.session == session && !entry.reported && entry.task->job.job_id == job->job_id &&
            entry.task->job.attempt == job->attempt) {
            log::warn("dropped duplicate JOB {} attempt {}", job->job_id, job->attempt);
            return;
        }
    }
    if (jobs_held() >= config.concurrency) {
        // The broker overdrew our credit: refuse rather than hold more than we declared.
        send(proto::Failure{job->job_id, job->attempt,
                            fmt::format("worker {} at capacity ({} jobs)", config.name,
                                        config.concurrency),
                            true});
        return;
    }
    auto task = std::make_shared<Task>();
    task->job = std::move(*job);
    task->ticket = next_ticket++;
    task->handler = &handler->second;
    if (task->job.timeout_s > 0)
        task->deadline = Clock::now() + std::chrono::seconds(task->job.timeout_s);
    log::debug("JOB {} type {} attempt {}", task->job.job_id, task->job.type, task->job.attempt);
    in_flight.emplace(task->ticket, InFlight{task, session});
    queue.push(std::move(task));
}

void Worker::Core::handle_cancel_job(const proto::Envelope& env) {
    auto cancel = proto::decode_body<proto::CancelJob>(env.body);
    if (!cancel) {
        log::warn("dropped malformed CANCEL_JOB ({} bytes)", env.body.size());
        return;
    }
    for (auto& [ticket, entry] : in_flight) {
        const proto::Job& job = entry.task->job;
        if (entry.session != session || entry.reported || job.job_id != cancel->job_id ||
            job.attempt != cancel->attempt)
            continue;
        if (entry.stop == StopReason::NONE) {
            entry.stop = StopReason::CANCEL;
            entry.hard_deadline = Clock::now() + config.stop_grace;
            entry.task->stop.request_stop();
        }
        return;
    }
    log::debug("CANCEL_JOB for {} attempt {}: not held", cancel->job_id, cancel->attempt);
}

void Worker::Core::handle_disconnect() {
    if (stopping) return;  // we are leaving anyway
    reconnect("broker sent DISCONNECT");
}

void Worker::Core::handle_pipe_message(std::uint64_t ticket, Kind kind, std::string body) {
    switch (kind) {
        case Kind::STOP:
            begin_stop();
            return;
        case Kind::PROGRESS:
        case Kind::CHUNK: {
            auto it = in_flight.find(ticket);
            if (it == in_flight.end() || it->second.reported || it->second.session != session)
                return;  // late output of a job already answered
            const auto command =
                kind == Kind::PROGRESS ? proto::Command::PROGRESS : proto::Command::CHUNK;
            if (!proto::send_frames(*dealer, {}, command, body))
                log::warn("dropped {}: broker socket full",
                          proto::command_name(static_cast<std::uint8_t>(command)));
            last_send = Clock::now();
            return;
        }
        case Kind::DONE_OK:
            handle_done(ticket, JobResult::success(proto::Bytes(body.begin(), body.end())));
            return;
        case Kind::DONE_ERROR: {
            JobError error{"handler error could not be decoded", true};
            if (auto fields = proto::decode_body<std::tuple<std::string, bool>>(body))
                error = JobError{std::get<0>(*fields), std::get<1>(*fields)};
            handle_done(ticket, JobResult::failure(std::move(error.message), error.retryable));
            return;
        }
    }
    log::warn("dropped pipe message of unknown kind {}", static_cast<int>(kind));
}

void Worker::Core::handle_done(std::uint64_t ticket, const JobResult& outcome) {
    auto it = in_flight.find(ticket);
    if (it == in_flight.end()) {
        log::warn("handler finished for unknown ticket {}", ticket);
        return;
    }
    InFlight entry = std::move(it->second);
    in_flight.erase(it);
    if (entry.reported) {
        log::debug("job {} attempt {} finished after it was answered", entry.task->job.job_id,
                   entry.task->job.attempt);
        return;
    }
    send_terminal(entry, entry.stop, &outcome);
}

void Worker::Core::begin_stop() {
    if (stopping) return;
    stopping = true;
    log::info("stopping: {} jobs running, grace {} ms", in_flight.size(),
              config.grace_period.count());
    send(proto::Disconnect{});
    drain_deadline = Clock::now() + config.grace_period;
}

void Worker::Core::run_timers(Clock::time_point now) {
    if (stopping && !drain_cancelled && now >= drain_deadline) {
        drain_cancelled = true;
        for (auto& [ticket, entry] : in_flight) {
            if (entry.reported || entry.stop != StopReason::NONE) continue;
            log::warn("job {} still running after the grace period: cancelling it",
                      entry.task->job.job_id);
            entry.stop = StopReason::SHUTDOWN;
            entry.hard_deadline = now + config.stop_grace;
            entry.task->stop.request_stop();
        }
    }
    for (auto& [ticket, entry] : in_flight) {
        if (entry.reported) continue;
        if (entry.stop == StopReason::NONE && now >= entry.task->deadline) {
            log::info("job {} attempt {} timed out after {} s", entry.task->job.job_id,
                      entry.task->job.attempt, entry.task->job.timeout_s);
            entry.stop = StopReason::TIMEOUT;
            entry.hard_deadline = now + config.stop_grace;
            entry.task->stop.request_stop();
        } else if (entry.stop != StopReason::NONE && now >= entry.hard_deadline) {
            log::error("handler for job {} ignored its stop token for {} ms; its thread stays busy",
                       entry.task->job.job_id, config.stop_grace.count());
            send_terminal(entry, entry.stop, nullptr);
            entry.reported = true;
        }
    }
    if (!stopping && now - last_recv >= config.heartbeat_interval * proto::HEARTBEAT_LIVENESS) {
        reconnect("broker silent for " +
                  std::to_string(proto::HEARTBEAT_LIVENESS) + " heartbeat intervals");
    }
    if (now - last_send >= config.heartbeat_interval) send(proto::Heartbeat{});
}

// Done once stopping and every job is answered and its handler returned, or given up on.
bool Worker::Core::finished(Clock::time_point now) const {
    return stopping && std::all_of(in_flight.begin(), in_flight.end(), [&](const auto& kv) {
               return kv.second.reported && now >= kv.second.hard_deadline;
           });
}

Clock::time_point Worker::Core::next_wakeup(Clock::time_point now) const {
    Clock::time_point next = last_send + config.heartbeat_interval;
    if (!stopping)
        next = std::min(next, last_recv + config.heartbeat_interval * proto::HEARTBEAT_LIVENESS);
    if (stopping && !drain_cancelled) next = std::min(next, drain_deadline);
    for (const auto& [ticket, entry] : in_flight) {
        if (entry.stop == StopReason::NONE && !entry.reported)
            next = std::min(next, entry.task->deadline);
        else if (!entry.reported || entry.hard_deadline > now)  // a passed one is handled
            next = std::min(next, entry.hard_deadline);
    }
    return next;
}

// The loop, one pass:
//   1. wait on the broker socket and the handler pipe until the next timer is due;
//   2. dispatch each broker message to handle_<command>() (any message proves the broker alive);
//   3. forward handler output (PROGRESS, CHUNK) and turn each finished handler into its
//      terminal message (RESULT, FAILURE or CANCELED); a STOP from stop() begins the shutdown;
//   4. run timers: job timeouts, stop grace, shutdown grace, broker liveness (reconnect),
//      heartbeat when nothing else was sent for an interval;
//   5. leave once stopping and every job is answered.
void Worker::Core::run_io() {
    for (;;) {
        auto now = Clock::now();
        if (finished(now)) break;
        const auto wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(next_wakeup(now) - now);
        const auto timeout = std::clamp(wait + std::chrono::milliseconds(1),
                                        std::chrono::milliseconds(0), config.heartbeat_interval);
        zmq::pollitem_t items[] = {{dealer->handle(), 0, ZMQ_POLLIN, 0},
                                   {pipe->handle(), 0, ZMQ_POLLIN, 0}};
        try {
            zmq::poll(items, 2, timeout);
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
            continue;
        }

        for (int i = 0; i < MAX_BATCH && (items[0].revents & ZMQ_POLLIN); ++i) {
            const std::uint64_t session_before = session;
            auto received = proto::try_recv(*dealer, false);
            if (!received) break;
            last_recv = Clock::now();
            if (!received->envelope) {
                log::warn("dropped malformed message from broker: {}", received->error);
                continue;
            }
            handle_broker_message(*received->envelope);
            if (session != session_before) break;  // the old socket is gone
        }

        for (int i = 0; i < MAX_BATCH && (items[1].revents & ZMQ_POLLIN); ++i) {
            zmq::message_t ticket_frame, kind_frame, body_frame;
            if (!pipe->recv(ticket_frame, zmq::recv_flags::dontwait)) break;
            (void)pipe->recv(kind_frame, zmq::recv_flags::none);
            (void)pipe->recv(body_frame, zmq::recv_flags::none);
            std::uint64_t ticket = 0;
            if (ticket_frame.size() != sizeof ticket || kind_frame.size() != 1) continue;  // a bug
            std::memcpy(&ticket, ticket_frame.data(), sizeof ticket);
            const auto kind = static_cast<Kind>(*static_cast<const std::uint8_t*>(
                kind_frame.data()));
            handle_pipe_message(ticket, kind, body_frame.to_string());
        }

        run_timers(Clock::now());
    }
    io_clean = in_flight.empty();
    for (auto& [ticket, entry] : in_flight)
        log::error("job {}: handler still running at exit", entry.task->job.job_id);
    dealer->set(zmq::sockopt::linger, FINAL_LINGER_MS);
    dealer.reset();
    pipe.reset();
}

// ---- Worker ----

Worker::Worker(WorkerConfig config) : core_(std::make_shared<Core>(std::move(config))) {}

Worker::~Worker() { stop(); }

const std::string& Worker::name() const { return core_->config.name; }

void Worker::register_handler(std::string type, Handler handler) {
    std::lock_guard lock(core_->stop_mutex);
    if (core_->started) throw std::logic_error("register_handler after start");
    core_->handlers[std::move(type)] = std::move(handler);
}

void Worker::start() {
    Core& core = *core_;
    std::lock_guard lock(core.stop_mutex);
    if (core.started) throw std::logic_error("Worker::start called twice");
    if (core.handlers.empty()) throw std::logic_error("Worker::start with no handler registered");
    if (core.config.concurrency == 0) throw std::logic_error("Worker concurrency must be >= 1");
    if (core.config.heartbeat_interval.count() <= 0)
        throw std::logic_error("Worker heartbeat_interval must be positive");

    // Sockets are made here so a bad endpoint throws to the caller; the thread start below
    // hands them to the I/O thread (a full memory barrier, as ZMQ requires for migration).
    core.pipe.emplace(core.ctx, zmq::socket_type::pull);
    core.pipe->bind(PIPE_ENDPOINT);
    core.connect_dealer();
    core.started = true;
    std::string types;
    for (const auto& [type, handler] : core.handlers) types += (types.empty() ? "" : ", ") + type;
    log::info("worker {} connecting to {} (CURVE {}): types [{}], concurrency {}", core.config.name,
              core.config.broker_endpoint, core.config.curve_keys ? "on" : "off", types, core.config.concurrency);

    for (std::uint32_t i = 0; i < core.config.concurrency; ++i)
        core.pool.emplace_back([c = core_] { c->run_pool_thread(); });
    core.io = std::thread([c = core_] {
        try {
            c->run_io();
        } catch (const std::exception& e) {
            // A broken socket is a bug or broken setup: stop every handler and leave.
            log::error("worker I/O loop failed: {}", e.what());
            for (auto& [ticket, entry] : c->in_flight) entry.task->stop.request_stop();
            c->io_clean = false;
            c->dealer.reset();
            c->pipe.reset();
        }
    });
}

bool Worker::stop() {
    Core& core = *core_;
    std::lock_guard lock(core.stop_mutex);
    if (!core.started || core.stopped) return core.clean;
    core.stopped = true;
    {
        // Our own short-lived socket: ZMQ sockets must not be shared across threads.
        zmq::socket_t control(core.ctx, zmq::socket_type::push);
        control.set(zmq::sockopt::linger, 0);
        control.set(zmq::sockopt::sndtimeo, 1000);  // the I/O thread may already be gone
        control.connect(PIPE_ENDPOINT);
        const std::uint64_t ticket = 0;
        const auto kind = static_cast<std::uint8_t>(Kind::STOP);
        if (control.send(zmq::buffer(&ticket, sizeof ticket), zmq::send_flags::sndmore)) {
            (void)control.send(zmq::buffer(&kind, 1), zmq::send_flags::sndmore);
            (void)control.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::none);
        }
    }
    core.io.join();
    core.clean = core.io_clean;
    core.queue.close();
    for (auto& thread : core.pool) {
        // A thread stuck in a handler that ignores its stop token cannot be joined; it keeps the
        // Core alive through its shared_ptr.
        if (core.clean)
            thread.join();
        else
            thread.detach();
    }
    log::info("worker {} stopped{}", core.config.name,
              core.clean ? "" : " (handlers left running)");
    return core.clean;
}

}  // namespace sluice::worker
