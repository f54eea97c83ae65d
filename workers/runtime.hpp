// The C++ worker runtime: connects a DEALER to the broker's backend, declares the job types it
// serves (READY), runs JOBs on a fixed pool of handler threads and reports PROGRESS, CHUNK and
// exactly one of RESULT, FAILURE or CANCELED per job (schemas/PROTOCOL.md, "worker <-> broker").
//
// Threads: one I/O thread owns the DEALER socket and all job bookkeeping; `concurrency` pool
// threads run the (blocking) handlers and hand their messages to the I/O thread over an inproc
// PUSH/PULL pipe. Nothing but the I/O thread touches the broker socket.
//
// Thread-safety: `register_handler` and `start` must be called from one thread, before the
// worker runs. `stop` is thread-safe and idempotent (callable from a signal-watching thread).
// `JobContext::progress` and `JobContext::emit` are thread-safe for the duration of the handler
// call. Everything else on JobContext is read-only and safe to call from any thread.
#pragma once

#include "curve.hpp"
#include "limits.hpp"
#include "protocol.hpp"

#include <msgpack.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::worker {

using Clock = std::chrono::steady_clock;

struct WorkerConfig {
    // Broker backend endpoints: the leader's and its standbys' (README.md, "A standby broker").
    // The DEALER connects to one at a time, the first to begin with, and moves to the next
    // whenever the broker it has goes silent (only the leader binds its socket).
    std::vector<std::string> broker_endpoints = {"tcp://127.0.0.1:5556"};

    // This worker's CURVE keypair and the broker's public key (README.md, Security): with them
    // the DEALER is a CURVE client, so only the holder of the broker's secret key gets its
    // messages. Default none: no CURVE (the broker must not require it).
    std::optional<curve::ClientKeys> curve_keys;

    // Name sent in READY, shown in the broker's logs and job records.
    // Default (empty): "<hostname>-<pid>".
    std::string name;

    // Jobs run at once: the number of handler threads and the credit declared in READY.
    // Default 4. Must be >= 1.
    std::uint32_t concurrency = 4;

    // How long stop() lets running jobs finish after it sent DISCONNECT; then they are cancelled.
    // Default 20 s: together with stop_grace it stays under the 30 s a container orchestrator
    // usually waits between SIGTERM and SIGKILL (Kubernetes' default terminationGracePeriod).
    std::chrono::milliseconds grace_period{20000};

    // How long a handler gets to return once its stop token was triggered (cancel, timeout,
    // shutdown) before the runtime reports the job without it. Default 5 s. A handler that
    // ignores its stop token keeps its thread busy (see the note at the top of runtime.cpp).
    std::chrono::milliseconds stop_grace{5000};

    // Largest job input in bytes, as the broker's SLUICE_MAX_INPUT_BYTES: libzmq refuses a
    // bigger JOB frame (and drops the connection) before allocating it.
    std::size_t max_input_bytes = limits::DEFAULT_MAX_INPUT;

    // Heartbeat period; the broker is declared dead after HEARTBEAT_LIVENESS silent periods.
    // Default proto::HEARTBEAT_INTERVAL_MS (1 s). Must match the broker: change it only in tests.
    std::chrono::milliseconds heartbeat_interval{proto::HEARTBEAT_INTERVAL_MS};
};

// Returns "<hostname>-<pid>", the default worker name.
std::string default_worker_name();

// An expected failure of a job, returned by a handler as a value.
struct JobError {
    // Sent cut to limits::MAX_ERROR_BYTES, whole UTF-8 characters only.
    std::string message;
    // true: the broker may run the job again (if it has attempts left).
    bool retryable = false;
    // The model provider refused a call for now (HTTP 429): sent as RATE_LIMITED, so the job
    // goes back without spending an attempt and the model pauses for retry_after_ms.
    bool rate_limited = false;
    std::uint32_t retry_after_ms = 0;
};

// What a handler returns: a msgpack-encoded result, or a JobError.
class JobResult {
public:
    // A successful result; `result` must hold one msgpack-encoded value.
    static JobResult success(proto::Bytes result) { return JobResult(std::move(result)); }
    // A failure with `message`; `retryable` says whether the broker may run the job again.
    static JobResult failure(std::string message, bool retryable) {
        return JobResult(JobError{std::move(message), retryable});
    }
    // The model provider answered 429 (README.md, "Provider rate limits"): no attempt spent.
    static JobResult rate_limited(std::string message, std::uint32_t retry_after_ms) {
        return JobResult(JobError{std::move(message), true, true, retry_after_ms});
    }

    bool ok() const { return std::holds_alternative<proto::Bytes>(value_); }
    // Requires ok().
    const proto::Bytes& result() const { return std::get<proto::Bytes>(value_); }
    // Requires !ok().
    const JobError& error() const { return std::get<JobError>(value_); }

private:
    explicit JobResult(std::variant<proto::Bytes, JobError> value) : value_(std::move(value)) {}
    std::variant<proto::Bytes, JobError> value_;
};

// Returns `value` encoded as one msgpack value (for JobResult::success).
template <class T>
proto::Bytes encode_value(const T& value) {
    msgpack::sbuffer buffer;
    msgpack::pack(buffer, value);
    return proto::Bytes(buffer.data(), buffer.data() + buffer.size());
}

// Decodes `bytes` as exactly one msgpack value. Returns nullopt when the bytes are not one whole
// msgpack value (garbage, truncated, or trailing bytes); never throws.
std::optional<msgpack::object_handle> unpack(const proto::Bytes& bytes) noexcept;

namespace detail {
struct Outbox;
}

// What a handler sees of its job. Valid only during the handler call: do not keep references
// to it (or call progress/emit from other threads) after the handler returned.
class JobContext {
public:
    const std::string& job_id() const { return job_.job_id; }
    const std::string& type() const { return job_.type; }
    // Run number, 1 for the first run.
    std::uint32_t attempt() const { return job_.attempt; }
    // The job input: one msgpack-encoded value, as submitted.
    const proto::Bytes& input() const { return job_.input; }
    // Returns the input decoded, or nullopt when it is not valid msgpack.
    std::optional<msgpack::object_handle> input_object() const { return unpack(job_.input); }

    // Triggered when the job is cancelled, times out or the worker shuts down. A handler should
    // check it (or wait on it) regularly and return soon after; what it returns then is ignored
    // unless the stop came from a shutdown and it returned a result.
    std::stop_token stop_token() const { return stop_; }
    bool stop_requested() const { return stop_.stop_requested(); }
    // When the runtime triggers the stop token for a timeout; Clock::time_point::max() if the
    // job has no timeout (timeout_s == 0).
    Clock::time_point deadline() const { return deadline_; }

    // Sends PROGRESS: `fraction` is clamped to 0..1. Thread-safe.
    void progress(double fraction, std::string_view message) const;
    // Sends CHUNK (streamed output text). Thread-safe.
    void emit(std::string_view chunk) const;

    // Used by the runtime.
    JobContext(const proto::Job& job, std::uint64_t ticket, std::stop_token stop,
               Clock::time_point deadline, detail::Outbox& outbox)
        : job_(job), ticket_(ticket), stop_(std::move(stop)), deadline_(deadline),
          outbox_(outbox) {}

private:
    const proto::Job& job_;
    std::uint64_t ticket_;
    std::stop_token stop_;
    Clock::time_point deadline_;
    detail::Outbox& outbox_;
};

// A job handler: blocking, runs on a pool thread. Returns the outcome as a value; an exception
// that escapes it is reported as a retryable FAILURE.
using Handler = std::function<JobResult(JobContext&)>;

class Worker {
public:
    explicit Worker(WorkerConfig config);
    // Stops the worker (as stop()) if it is running.
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Serves job type `type` with `handler` (replacing an earlier one). Call before start().
    void register_handler(std::string type, Handler handler);

    // Connects to the broker, sends READY and starts the I/O and pool threads; returns at once.
    // Throws std::logic_error if called twice, if no handler is registered or concurrency is 0,
    // zmq::error_t for a malformed endpoint.
    void start();

    // Graceful shutdown: sends DISCONNECT, refuses new jobs, lets running jobs finish for up to
    // grace_period, then cancels them (reported as retryable FAILUREs) and waits up to stop_grace
    // more. Blocks until done. Returns true when every handler returned; false when some handler
    // ignored its stop token (its thread is left running, detached). Thread-safe; later and
    // concurrent calls wait for the first one and return its result. No-op before start().
    bool stop();

    // The name sent in READY. Thread-safe.
    const std::string& name() const;

    struct Core;

private:
    std::shared_ptr<Core> core_;
};

}  // namespace sluice::worker
