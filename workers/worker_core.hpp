// The worker runtime's insides (see runtime.hpp), shared by its two halves: runtime.cpp (the
// public API and the handler pool) and worker_io.cpp (the I/O thread that owns the broker
// socket). Not part of the runtime's interface: only those two files include it.
#pragma once

#include "runtime.hpp"
#include "wire.hpp"

#include <zmq.hpp>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace sluice::worker {
namespace detail {

// Kinds of messages on the inproc pipe from handler threads (and stop()) to the I/O thread.
// Every pipe message is three frames: ticket (8 bytes), kind (1 byte), body.
enum class Kind : std::uint8_t {
    PROGRESS = 1,    // body: encoded proto::Progress
    CHUNK = 2,       // body: encoded proto::Chunk
    DONE_OK = 3,     // body: the result bytes
    DONE_ERROR = 4,  // body: msgpack [message, retryable, rate_limited, retry_after_ms]
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


inline constexpr const char* PIPE_ENDPOINT = "inproc://sluice-worker-pipe";
// Linger on the broker socket when the worker stops: long enough to flush the last RESULTs and
// DISCONNECT to a live broker, short enough not to hang on a dead one.
inline constexpr int FINAL_LINGER_MS = 2000;
// Most messages read from one socket per loop pass, so a flood cannot starve the timers.
inline constexpr int MAX_BATCH = 100;

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

}  // namespace detail

using detail::FINAL_LINGER_MS;
using detail::InFlight;
using detail::Kind;
using detail::MAX_BATCH;
using detail::PIPE_ENDPOINT;
using detail::StopReason;
using detail::Task;
using detail::TaskQueue;

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
    std::size_t endpoint = 0;  // of config.broker_endpoints (modulo its size): the one connected
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
    void reconnect(std::string_view why, bool next_endpoint);
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

}  // namespace sluice::worker
