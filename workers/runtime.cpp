// Worker runtime (see runtime.hpp): the public API, job contexts and the handler pool. The I/O
// thread that owns the broker socket and turns a finished handler into RESULT, FAILURE or
// CANCELED is in worker_io.cpp; what both share is in worker_core.hpp.
//
// A handler that ignores its stop token cannot be killed (it is a thread): once stop_grace has
// passed the runtime reports the job without it (so the broker can move on) and logs an error;
// that pool thread stays busy, and jobs that arrive meanwhile wait in the local queue.
#include "worker_core.hpp"

#include "log.hpp"
#include "utf8.hpp"
#include "wire.hpp"

#include <unistd.h>

#include <zmq.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <stdexcept>

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
            packer.pack_array(4);
            // Cut at the source: the broker cuts a longer error to the same length anyway, and
            // its socket refuses (and drops this worker for) a frame past its limit.
            packer.pack(utf8_prefix(outcome->error().message, limits::MAX_ERROR_BYTES));
            packer.pack(outcome->error().retryable);
            packer.pack(outcome->error().rate_limited);
            packer.pack(outcome->error().retry_after_ms);
            outbox.push(task->ticket, Kind::DONE_ERROR,
                        std::string_view(buffer.data(), buffer.size()));
        }
    }
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
              fmt::join(core.config.broker_endpoints, ","), core.config.curve_keys ? "on" : "off", types, core.config.concurrency);

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
