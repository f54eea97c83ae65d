// The worker runtime's I/O thread (see worker_core.hpp): the one thread that owns the broker
// socket and the pipe from the handler pool, and turns what arrives on either into messages.
#include "worker_core.hpp"

#include "log.hpp"
#include "wire.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::worker {

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
    dealer->connect(config.broker_endpoints[endpoint % config.broker_endpoints.size()]);
    proto::Ready ready;
    ready.worker_name = config.name;
    ready.runtime = "cpp";
    for (const auto& [type, handler] : handlers) ready.types.push_back(type);
    ready.schemas.assign(ready.types.size(), "");  // native tasks declare no input schema
    ready.concurrency = config.concurrency;
    send(ready);
    last_recv = Clock::now();  // a fresh connection gets a full liveness period
}

// A new socket (new identity) rather than READY on the old one: anything the broker queued for
// the old session (more DISCONNECTs, stale JOBs) is discarded with it. The broker has put the
// jobs of the old session back in their queues, so their handlers are stopped and their
// answers dropped. `next_endpoint`: the broker went silent, so the next endpoint is tried (a
// standby that has taken over, or the leader again on a lone endpoint).
void Worker::Core::reconnect(std::string_view why, bool next_endpoint) {
    if (next_endpoint) ++endpoint;
    log::warn("reconnecting to {}: {}", config.broker_endpoints[endpoint % config.broker_endpoints.size()], why);
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
    else if (outcome->error().rate_limited)
        send(proto::RateLimited{job.job_id, job.attempt, outcome->error().retry_after_ms, outcome->error().message});
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
    reconnect("broker sent DISCONNECT", false);
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
            auto fields = proto::decode_body<std::tuple<std::string, bool, bool, std::uint32_t>>(body);
            if (!fields) return handle_done(ticket, JobResult::failure("handler error could not be decoded", true));
            auto& [message, retryable, rate_limited, retry_after_ms] = *fields;
            handle_done(ticket, rate_limited ? JobResult::rate_limited(std::move(message), retry_after_ms)
                                             : JobResult::failure(std::move(message), retryable));
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
                  std::to_string(proto::HEARTBEAT_LIVENESS) + " heartbeat intervals",
                  true);
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

}  // namespace sluice::worker
