// Worker runtime tests: a real ZMQ ROUTER in the test plays the broker on tcp://127.0.0.1:*,
// and a real Worker (I/O thread + handler pool) connects to it. Every wait is bounded.
#include "native_tasks.hpp"
#include "runtime.hpp"
#include "wire.hpp"

#include <doctest/doctest.h>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
using namespace sluice;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// The broker side of the backend: a ROUTER bound to a free port, a CURVE server with
// `secret_key` if one is given (with no ZAP handler: it admits any client key).
class FakeBroker {
public:
    explicit FakeBroker(const std::string& secret_key = {}) {
        router_.set(zmq::sockopt::linger, 0);
        if (!secret_key.empty()) {
            router_.set(zmq::sockopt::curve_server, 1);
            router_.set(zmq::sockopt::curve_secretkey, secret_key);
        }
        router_.bind("tcp://127.0.0.1:*");
        endpoint = router_.get(zmq::sockopt::last_endpoint);
    }

    // Returns the next message from a worker within `timeout`, or nullopt. HEARTBEATs are
    // skipped unless `want_heartbeats`. While waiting it heartbeats the worker (if
    // `send_heartbeats`) so the worker sees a live broker.
    std::optional<proto::Envelope> recv(milliseconds timeout, bool want_heartbeats = false) {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            if (auto received = proto::try_recv(router_, true)) {
                REQUIRE_MESSAGE(received->envelope, received->error);
                peer = received->envelope->identity;
                const auto heartbeat = static_cast<std::uint8_t>(proto::Command::HEARTBEAT);
                if (received->envelope->command != heartbeat || want_heartbeats)
                    return received->envelope;
                continue;
            }
            const auto now = Clock::now();
            if (now >= deadline) return std::nullopt;
            if (send_heartbeats && !peer.empty() && now - last_heartbeat_ >= 300ms) {
                send(proto::Heartbeat{});
                last_heartbeat_ = now;
            }
            zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
            const auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
            zmq::poll(&item, 1, std::min(left + 1ms, milliseconds(50)));
        }
    }

    // Returns every non-HEARTBEAT message that arrives within `duration`.
    std::vector<proto::Envelope> collect(milliseconds duration) {
        std::vector<proto::Envelope> all;
        const auto deadline = Clock::now() + duration;
        for (auto now = Clock::now(); now < deadline; now = Clock::now()) {
            auto env = recv(std::chrono::duration_cast<milliseconds>(deadline - now));
            if (env) all.push_back(std::move(*env));
        }
        return all;
    }

    // Receives the next message and requires it to be a T; returns it decoded.
    template <class T>
    T expect(milliseconds timeout = 2000ms) {
        auto env = recv(timeout, T::command == proto::Command::HEARTBEAT);
        const std::string want = proto::command_name(static_cast<std::uint8_t>(T::command));
        const std::string missing =
            "no " + want + " within " + std::to_string(timeout.count()) + " ms";
        REQUIRE_MESSAGE(env, missing);
        const char* got = proto::command_name(env->command);
        const std::string wrong = "expected " + want + ", got " + (got ? got : "?");
        REQUIRE_MESSAGE(env->command == static_cast<std::uint8_t>(T::command), wrong);
        auto msg = proto::decode_body<T>(env->body);
        REQUIRE(msg);
        return *msg;
    }

    template <class T>
    void send(const T& msg) {
        REQUIRE(proto::send(router_, msg, peer));
    }

    std::string endpoint;
    std::string peer;  // identity of the worker that spoke last
    bool send_heartbeats = true;

private:
    zmq::context_t ctx_{1};
    zmq::socket_t router_{ctx_, zmq::socket_type::router};
    Clock::time_point last_heartbeat_{};
};

worker::WorkerConfig test_config(const FakeBroker& broker, std::uint32_t concurrency = 2) {
    worker::WorkerConfig config;
    config.broker_endpoints = {broker.endpoint};
    config.name = "test-worker";
    config.concurrency = concurrency;
    config.grace_period = 1000ms;
    config.stop_grace = 1000ms;
    return config;
}

proto::Bytes sleep_input(std::int64_t ms) {
    return worker::encode_value(std::map<std::string, std::int64_t>{{"ms", ms}});
}

proto::Job make_job(std::string id, std::string type, proto::Bytes input, std::uint32_t attempt = 1,
                    std::uint32_t timeout_s = 0) {
    return proto::Job{std::move(id), std::move(type), std::move(input), attempt, timeout_s, "", {}};
}

// Registers echo and sleep on `w`, starts it against `broker` and consumes its READY.
void start_native(worker::Worker& w, FakeBroker& broker) {
    worker::tasks::register_all(w);
    w.start();
    broker.expect<proto::Ready>();
}

}  // namespace

TEST_CASE("READY declares name, runtime, sorted types and concurrency") {
    FakeBroker broker;
    worker::Worker w(test_config(broker, 3));
    worker::tasks::register_all(w);
    w.start();
    const auto ready = broker.expect<proto::Ready>();
    CHECK(ready.worker_name == "test-worker");
    CHECK(ready.runtime == "cpp");
    CHECK(ready.types == std::vector<std::string>{"echo", "sleep"});
    CHECK(ready.schemas == std::vector<std::string>{"", ""});  // native tasks declare none
    CHECK(ready.concurrency == 3);
    CHECK(w.stop());
}

TEST_CASE("with CURVE keys the worker talks only to the holder of the broker's secret key") {
    struct Pair {
        Pair() { REQUIRE(zmq_curve_keypair(public_key, secret_key) == 0); }
        char public_key[41];
        char secret_key[41];
    } broker_pair, worker_pair, other_pair;
    const curve::ClientKeys keys{worker_pair.public_key, worker_pair.secret_key, broker_pair.public_key};

    SUBCASE("the broker gets READY") {
        FakeBroker broker(broker_pair.secret_key);
        auto config = test_config(broker);
        config.curve_keys = keys;
        worker::Worker w(config);
        start_native(w, broker);
    }
    SUBCASE("a server with another keypair gets nothing: the handshake fails") {
        FakeBroker impostor(other_pair.secret_key);
        auto config = test_config(impostor);
        config.curve_keys = keys;
        worker::Worker w(config);
        worker::tasks::register_all(w);
        w.start();
        impostor.send_heartbeats = false;
        CHECK(impostor.collect(1000ms).empty());
    }
}

TEST_CASE("default name is hostname-pid") {
    const std::string name = worker::default_worker_name();
    CHECK(name.find('-') != std::string::npos);
    CHECK(name.substr(name.rfind('-') + 1) == std::to_string(getpid()));
}

TEST_CASE("echo returns its input unchanged, with the job's attempt") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    const proto::Bytes input = worker::encode_value(std::map<std::string, std::string>{{"text", "hello"}});
    broker.send(make_job("job-echo", "echo", input, 3));
    const auto result = broker.expect<proto::Result>();
    CHECK(result.job_id == "job-echo");
    CHECK(result.attempt == 3);
    CHECK(result.result == input);
}

TEST_CASE("sleep reports progress, then its result") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    broker.send(make_job("job-sleep", "sleep", sleep_input(200), 2));

    int progress_events = 0;
    double last_fraction = 0;
    for (;;) {
        auto env = broker.recv(2000ms);
        REQUIRE(env);
        if (env->command == static_cast<std::uint8_t>(proto::Command::PROGRESS)) {
            auto progress = proto::decode_body<proto::Progress>(env->body);
            REQUIRE(progress);
            CHECK(progress->job_id == "job-sleep");
            CHECK(progress->attempt == 2);
            CHECK(progress->fraction > last_fraction);
            CHECK(progress->fraction <= 1.0);
            last_fraction = progress->fraction;
            ++progress_events;
            continue;
        }
        REQUIRE(env->command == static_cast<std::uint8_t>(proto::Command::RESULT));
        auto result = proto::decode_body<proto::Result>(env->body);
        REQUIRE(result);
        CHECK(result->attempt == 2);
        auto decoded = worker::unpack(result->result);
        REQUIRE(decoded);
        auto fields = decoded->get().as<std::map<std::string, std::int64_t>>();
        CHECK(fields == std::map<std::string, std::int64_t>{{"slept_ms", 200}});
        break;
    }
    CHECK(progress_events == 10);
    CHECK(last_fraction == doctest::Approx(1.0));
}

TEST_CASE("emit sends CHUNKs before the result") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    w.register_handler("stream", [](worker::JobContext& ctx) {
        ctx.emit("hel");
        ctx.emit("lo");
        return worker::JobResult::success(worker::encode_value("hello"));
    });
    w.start();
    broker.expect<proto::Ready>();
    broker.send(make_job("job-stream", "stream", worker::encode_value(msgpack::type::nil_t()), 4));
    auto first = broker.expect<proto::Chunk>();
    auto second = broker.expect<proto::Chunk>();
    CHECK(first.data == "hel");
    CHECK(second.data == "lo");
    CHECK(first.attempt == 4);
    CHECK(broker.expect<proto::Result>().result == worker::encode_value("hello"));
}

TEST_CASE("never more than concurrency jobs in flight") {
    FakeBroker broker;
    worker::Worker w(test_config(broker, 2));
    struct State {
        std::atomic<int> running{0};
        std::atomic<int> max_running{0};
        std::atomic<bool> release{false};
    };
    auto state = std::make_shared<State>();
    w.register_handler("block", [state](worker::JobContext& ctx) {
        const int now = ++state->running;
        int seen = state->max_running.load();
        while (now > seen && !state->max_running.compare_exchange_weak(seen, now)) {
        }
        const auto until = Clock::now() + 3s;
        while (!state->release && !ctx.stop_requested() && Clock::now() < until)
            std::this_thread::sleep_for(2ms);
        --state->running;
        return worker::JobResult::success(worker::encode_value(ctx.job_id()));
    });
    w.start();
    broker.expect<proto::Ready>();

    broker.send(make_job("a", "block", worker::encode_value(msgpack::type::nil_t())));
    broker.send(make_job("b", "block", worker::encode_value(msgpack::type::nil_t())));
    broker.send(make_job("c", "block", worker::encode_value(msgpack::type::nil_t())));  // beyond the credit
    const auto refused = broker.expect<proto::Failure>(1000ms);
    CHECK(refused.job_id == "c");
    CHECK(refused.retryable);
    // Both held jobs start; nothing else runs.
    for (int i = 0; i < 200 && state->running < 2; ++i) std::this_thread::sleep_for(5ms);
    CHECK(state->running == 2);

    state->release = true;
    std::set<std::string> done;
    done.insert(broker.expect<proto::Result>().job_id);
    done.insert(broker.expect<proto::Result>().job_id);
    CHECK(done == std::set<std::string>{"a", "b"});

    // The credit came back: a new job is accepted and runs.
    broker.send(make_job("d", "block", worker::encode_value(msgpack::type::nil_t())));
    CHECK(broker.expect<proto::Result>().job_id == "d");
    CHECK(state->max_running == 2);
}

TEST_CASE("CANCEL_JOB stops the handler and answers CANCELED") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    broker.send(make_job("job-cancel", "sleep", sleep_input(5000), 5));
    broker.expect<proto::Progress>();  // it is running

    // A cancel for another attempt is not ours to act on.
    broker.send(proto::CancelJob{"job-cancel", 4});
    for (const auto& env : broker.collect(300ms))
        CHECK(env.command == static_cast<std::uint8_t>(proto::Command::PROGRESS));

    const auto sent = Clock::now();
    broker.send(proto::CancelJob{"job-cancel", 5});
    std::optional<proto::Canceled> canceled;
    for (int i = 0; i < 20 && !canceled; ++i) {
        auto env = broker.recv(2000ms);
        REQUIRE(env);
        if (env->command == static_cast<std::uint8_t>(proto::Command::PROGRESS)) continue;
        REQUIRE(env->command == static_cast<std::uint8_t>(proto::Command::CANCELED));
        canceled = proto::decode_body<proto::Canceled>(env->body);
    }
    REQUIRE(canceled);
    CHECK(canceled->job_id == "job-cancel");
    CHECK(canceled->attempt == 5);
    CHECK(Clock::now() - sent < 500ms);
}

TEST_CASE("a handler past its timeout is stopped and reported as a retryable FAILURE") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    const auto sent = Clock::now();
    broker.send(make_job("job-slow", "sleep", sleep_input(20000), 2, 1));
    std::optional<proto::Failure> failure;
    for (int i = 0; i < 20 && !failure; ++i) {
        auto env = broker.recv(3000ms);
        REQUIRE(env);
        if (env->command == static_cast<std::uint8_t>(proto::Command::PROGRESS)) continue;
        REQUIRE(env->command == static_cast<std::uint8_t>(proto::Command::FAILURE));
        failure = proto::decode_body<proto::Failure>(env->body);
    }
    const auto elapsed = Clock::now() - sent;
    REQUIRE(failure);
    CHECK(failure->job_id == "job-slow");
    CHECK(failure->attempt == 2);
    CHECK(failure->error == "timeout after 1 s");
    CHECK(failure->retryable);
    CHECK(elapsed >= 900ms);
    CHECK(elapsed < 2000ms);
}

TEST_CASE("invalid sleep input is a non-retryable FAILURE") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    const std::vector<std::pair<proto::Bytes, std::string>> cases = {
        {sleep_input(-5), "\"ms\" must be >= 0"},
        {sleep_input(worker::tasks::MAX_SLEEP_MS + 1), "at most"},
        {worker::encode_value(std::map<std::string, int>{{"seconds", 1}}), "needs an integer \"ms\""},
        {worker::encode_value(std::map<std::string, std::string>{{"ms", "100"}}), "must be an integer"},
        {worker::encode_value("not a map"), "must be a map"},
        {proto::Bytes{'\xc1'}, "not valid msgpack"},
    };
    int n = 0;
    for (const auto& [input, expected] : cases) {
        CAPTURE(expected);
        const std::string id = "bad-" + std::to_string(n++);
        broker.send(make_job(id, "sleep", input));
        const auto failure = broker.expect<proto::Failure>();
        CHECK(failure.job_id == id);
        CHECK_FALSE(failure.retryable);
        CHECK(failure.error.find(expected) != std::string::npos);
    }
}

TEST_CASE("an exception from a handler is a retryable FAILURE; an unknown type is not retryable") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    w.register_handler("boom", [](worker::JobContext&) -> worker::JobResult {
        throw std::runtime_error("kaboom");
    });
    w.start();
    broker.expect<proto::Ready>();
    broker.send(make_job("job-boom", "boom", worker::encode_value(msgpack::type::nil_t())));
    auto failure = broker.expect<proto::Failure>();
    CHECK(failure.retryable);
    CHECK(failure.error.find("kaboom") != std::string::npos);

    broker.send(make_job("job-nope", "nope", worker::encode_value(msgpack::type::nil_t())));
    failure = broker.expect<proto::Failure>();
    CHECK(failure.job_id == "job-nope");
    CHECK_FALSE(failure.retryable);
}

TEST_CASE("a handler's JobResult::rate_limited is sent as RATE_LIMITED, not a FAILURE") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    w.register_handler("limited", [](worker::JobContext&) {
        return worker::JobResult::rate_limited("429 Too Many Requests", 1500);
    });
    w.start();
    broker.expect<proto::Ready>();
    broker.send(make_job("job-limited", "limited", worker::encode_value(msgpack::type::nil_t())));
    const auto limited = broker.expect<proto::RateLimited>();
    CHECK(limited.job_id == "job-limited");
    CHECK(limited.attempt == 1);
    CHECK(limited.retry_after_ms == 1500);
    CHECK(limited.error == "429 Too Many Requests");
}

TEST_CASE("a handler's long error is sent cut to the shared limit, whole characters only") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    // "é" is two bytes and the limit even: the "x" before them puts one across the limit.
    std::string message = "x";
    while (message.size() < 2 * limits::MAX_ERROR_BYTES) message += "\xc3\xa9";
    w.register_handler("long", [message](worker::JobContext&) { return worker::JobResult::failure(message, false); });
    w.start();
    broker.expect<proto::Ready>();
    broker.send(make_job("job-long", "long", worker::encode_value(msgpack::type::nil_t())));
    const auto failure = broker.expect<proto::Failure>();
    CHECK(failure.error.size() == limits::MAX_ERROR_BYTES - 1);
    CHECK(failure.error == message.substr(0, limits::MAX_ERROR_BYTES - 1));
}

TEST_CASE("an idle worker heartbeats every interval") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    const auto start = Clock::now();
    broker.expect<proto::Heartbeat>(1500ms);
    broker.expect<proto::Heartbeat>(1500ms);
    const auto elapsed = Clock::now() - start;
    CHECK(elapsed >= 1500ms);  // two 1 s intervals, not a flood
    CHECK(elapsed < 2600ms);
}

TEST_CASE("DISCONNECT from the broker makes the worker send READY again") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    broker.send(proto::Disconnect{});
    const auto ready = broker.expect<proto::Ready>(1000ms);
    CHECK(ready.worker_name == "test-worker");
    // The new session works.
    broker.send(make_job("after", "echo", worker::encode_value(1)));
    CHECK(broker.expect<proto::Result>().job_id == "after");
}

TEST_CASE("a silent broker makes the worker reconnect with a new socket and READY") {
    FakeBroker broker;
    broker.send_heartbeats = false;
    auto config = test_config(broker);
    config.heartbeat_interval = 100ms;  // liveness lost after 300 ms
    worker::Worker w(config);
    start_native(w, broker);
    const std::string first_identity = broker.peer;
    const auto start = Clock::now();
    broker.expect<proto::Ready>(1500ms);
    CHECK(Clock::now() - start >= 250ms);
    CHECK(broker.peer != first_identity);
}

TEST_CASE("stop() sends DISCONNECT and lets a running job finish") {
    FakeBroker broker;
    worker::Worker w(test_config(broker));
    start_native(w, broker);
    broker.send(make_job("job-drain", "sleep", sleep_input(300)));
    broker.expect<proto::Progress>();
    auto stopped = std::async(std::launch::async, [&] { return w.stop(); });
    bool disconnected = false;
    std::optional<proto::Result> result;
    for (int i = 0; i < 20 && !result; ++i) {
        auto env = broker.recv(2000ms);
        REQUIRE(env);
        const auto cmd = static_cast<proto::Command>(env->command);
        if (cmd == proto::Command::DISCONNECT) disconnected = true;
        if (cmd == proto::Command::RESULT) {
            CHECK(disconnected);  // DISCONNECT first: no new jobs while draining
            result = proto::decode_body<proto::Result>(env->body);
        }
    }
    REQUIRE(result);
    CHECK(result->job_id == "job-drain");
    REQUIRE(stopped.wait_for(2s) == std::future_status::ready);
    CHECK(stopped.get());
    CHECK(w.stop());  // idempotent
}

TEST_CASE("stop() cancels jobs still running after the grace period") {
    FakeBroker broker;
    auto config = test_config(broker);
    config.grace_period = 200ms;
    worker::Worker w(config);
    start_native(w, broker);
    broker.send(make_job("job-long", "sleep", sleep_input(5000), 3));
    broker.expect<proto::Progress>();
    const auto start = Clock::now();
    auto stopped = std::async(std::launch::async, [&] { return w.stop(); });
    std::optional<proto::Failure> failure;
    for (int i = 0; i < 40 && !failure; ++i) {
        auto env = broker.recv(2000ms);
        REQUIRE(env);
        const auto cmd = static_cast<proto::Command>(env->command);
        if (cmd == proto::Command::PROGRESS || cmd == proto::Command::DISCONNECT) continue;
        REQUIRE(cmd == proto::Command::FAILURE);
        failure = proto::decode_body<proto::Failure>(env->body);
    }
    REQUIRE(failure);
    CHECK(failure->attempt == 3);
    CHECK(failure->retryable);
    CHECK(failure->error.find("shut down") != std::string::npos);
    REQUIRE(stopped.wait_for(2s) == std::future_status::ready);
    CHECK(stopped.get());
    CHECK(Clock::now() - start < 1500ms);
}
