"""Worker runtime tests: a real ZMQ ROUTER in the test plays the broker on tcp://127.0.0.1:*.

Each test runs its own event loop (asyncio.run) under a hard time limit, so a hang fails the
test instead of stalling the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import msgpack
import pytest
import zmq
import zmq.asyncio

import sluice.tasks  # noqa: F401  (registers the built-in tasks in the default registry)
import sluice.ai_tasks  # noqa: F401  (and the AI tasks: the CLI serves both by default)
from sluice import protocol as p
from sluice.errors import NonRetryableError
from sluice.registry import TaskRegistry, registry as builtin_registry, task
from sluice.curve import ClientKeys
from sluice.worker import _THREAD_REPORTS_IN_FLIGHT, Worker, WorkerConfig

TEST_LIMIT = 10.0  # seconds; every test finishes far sooner
# What `sluice-worker` with no module serves: sluice.tasks and sluice.ai_tasks.
BUILTIN_AND_AI_TASKS = ["analyze", "chat", "echo", "entities", "fail", "sentiment", "sleep",
                        "summarize", "text_stats"]


def _declared_models(names: list[str]) -> tuple[list[str], list[int], list[int]]:
    """What READY says of these tasks' models (TaskRegistry.models, for a subset)."""
    uses = [builtin_registry.get(name).model for name in names]
    uses = [use() if callable(use) else use for use in uses]
    return ([u.model if u else "" for u in uses], [u.chars_per_token if u else 0 for u in uses],
            [u.max_tokens if u else 0 for u in uses])


def run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, TEST_LIMIT))


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes):
    return msgpack.unpackb(data, raw=False)


class FakeBroker:
    """A ROUTER socket bound to a free port, speaking SLUICE/1 to the worker under test; a CURVE
    server with `secret_key` if one is given (no ZAP handler: it admits any client key)."""

    def __init__(self, ctx: zmq.asyncio.Context, secret_key: bytes | None = None) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        if secret_key is not None:
            self.sock.curve_server = True
            self.sock.curve_secretkey = secret_key
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()

    async def recv(self, timeout: float = 3.0):
        """Returns (identity, message) of the next message, heartbeats included."""
        frames = await asyncio.wait_for(self.sock.recv_multipart(), timeout)
        return frames[0], p.decode(frames[1:])

    async def expect(self, cls, timeout: float = 3.0):
        """Returns (identity, message) of the next non-heartbeat message; it must be a `cls`."""
        deadline = time.monotonic() + timeout
        while True:
            identity, msg = await self.recv(max(deadline - time.monotonic(), 0.001))
            if not isinstance(msg, p.Heartbeat):
                assert isinstance(msg, cls), f"expected {cls.__name__}, got {msg}"
                return identity, msg

    async def expect_nothing(self, seconds: float) -> None:
        """Asserts that only heartbeats arrive for `seconds`."""
        with pytest.raises(asyncio.TimeoutError):
            await self.expect(object, timeout=seconds)

    def send(self, identity: bytes, msg) -> None:
        self.sock.send_multipart([identity, *p.encode(msg)])


@contextlib.asynccontextmanager
async def serving(reg: TaskRegistry, **config):
    """Starts a Worker against a FakeBroker; yields (broker, worker, worker identity, READY)."""
    ctx = zmq.asyncio.Context()
    broker = FakeBroker(ctx)
    config.setdefault("name", "test-worker")
    worker = Worker(reg, WorkerConfig(broker=broker.endpoint, **config), context=ctx)
    running = asyncio.create_task(worker.run())
    try:
        identity, ready = await broker.expect(p.Ready)
        yield broker, worker, identity, ready
    finally:
        worker.stop()
        worker.stop()  # skip the grace period
        try:
            await asyncio.wait_for(running, 5)
        finally:
            ctx.destroy(linger=0)


def make_registry() -> TaskRegistry:
    reg = TaskRegistry()

    @task("echo", registry=reg)
    async def echo(value, ctx):
        return value

    return reg


# ---- registration, READY, results -------------------------------------------------------------


def test_with_curve_keys_the_worker_talks_only_to_the_holder_of_the_broker_secret_key():
    async def scenario():
        ctx = zmq.asyncio.Context()
        try:
            broker_public, broker_secret = zmq.curve_keypair()
            public, secret = zmq.curve_keypair()
            broker, impostor = FakeBroker(ctx, broker_secret), FakeBroker(ctx, zmq.curve_keypair()[1])
            workers = [Worker(make_registry(), WorkerConfig(broker=to.endpoint, name="curve",
                                                            curve=ClientKeys(public, secret, broker_public)),
                              context=ctx) for to in (broker, impostor)]
            running = [asyncio.create_task(worker.run()) for worker in workers]
            _, ready = await broker.expect(p.Ready)
            assert ready.worker_name == "curve"
            with pytest.raises(asyncio.TimeoutError):
                await impostor.recv(timeout=1.0)  # the handshake failed: not even a heartbeat
            for worker in workers:
                worker.stop()
                worker.stop()
            await asyncio.wait_for(asyncio.gather(*running), 5)
        finally:
            ctx.destroy(linger=0)

    run(scenario())


def test_ready_names_worker_runtime_types_and_concurrency():
    async def scenario():
        async with serving(builtin_registry, concurrency=3) as (_, _, _, ready):
            # Other test modules may have imported sluice.ai_tasks into the same registry.
            assert ready == p.Ready("test-worker", "python", builtin_registry.names(), 3,
                                    builtin_registry.schemas(), *builtin_registry.models())
            assert {"echo", "fail", "sleep", "text_stats"} <= set(ready.types)

    run(scenario())


def test_echo_round_trip():
    value = {"text": "Grüße", "n": [1, -2, 2**40], "raw": b"\x00\xff", "nested": {"x": None}}

    async def scenario():
        async with serving(builtin_registry) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-1", "echo", pack(value), 1, 30))
            _, result = await broker.expect(p.Result)
            assert (result.job_id, result.attempt) == ("job-1", 1)
            assert unpack(result.result) == value

    run(scenario())


def test_never_more_than_concurrency_jobs_in_flight():
    reg = TaskRegistry()
    state = {"now": 0, "max": 0}

    @task("hold", registry=reg)
    async def hold(value, ctx):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.2)
        state["now"] -= 1
        return value

    async def scenario():
        async with serving(reg, concurrency=2) as (broker, _, ident, ready):
            assert ready.concurrency == 2
            for i in range(5):  # more than the credit, as a confused broker might
                broker.send(ident, p.Job(f"job-{i}", "hold", pack(i), 1, 30))
            results = [(await broker.expect(p.Result))[1] for _ in range(5)]
            assert sorted(unpack(r.result) for r in results) == [0, 1, 2, 3, 4]
        assert state["max"] == 2

    run(scenario())


def test_progress_and_chunks_arrive_in_order_before_the_result():
    reg = TaskRegistry()

    @task("talk", registry=reg)
    async def talk(value, ctx):
        await ctx.progress(0.25, "a quarter")
        await ctx.emit("Hello")
        await ctx.progress(2.0, "clamped")
        await ctx.emit(", world")
        return "done"

    async def scenario():
        async with serving(reg) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-t", "talk", pack(None), 3, 30))
            got = [(await broker.expect(object))[1] for _ in range(5)]
            assert got == [
                p.Progress("job-t", 3, 0.25, "a quarter"),
                p.Chunk("job-t", 3, "Hello"),
                p.Progress("job-t", 3, 1.0, "clamped"),
                p.Chunk("job-t", 3, ", world"),
                p.Result("job-t", 3, pack("done")),
            ]

    run(scenario())


def test_sync_handler_runs_in_a_thread_and_reports_in_order():
    reg = TaskRegistry()
    threads = []

    @task(registry=reg)
    def crunch(value, ctx):
        threads.append(threading.current_thread().name)
        assert ctx.job_id == "job-s" and ctx.attempt == 1 and not ctx.cancelled
        ctx.progress(0.5, "half")
        ctx.emit("partial")
        return {"sum": sum(value)}

    async def scenario():
        async with serving(reg) as (broker, _, ident, ready):
            assert ready.types == ["crunch"]
            broker.send(ident, p.Job("job-s", "crunch", pack([1, 2, 3]), 1, 30))
            got = [(await broker.expect(object))[1] for _ in range(3)]
            assert got == [p.Progress("job-s", 1, 0.5, "half"), p.Chunk("job-s", 1, "partial"),
                           p.Result("job-s", 1, pack({"sum": 6}))]
        assert threads and threads[0] != threading.main_thread().name

    run(scenario())


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_broker_that_reads_slowly_gets_every_chunk_in_order_and_the_handler_waits(kind):
    # The broker's socket stops reading: the worker's socket fills up to its high-water mark and
    # the kernel's buffers, then its outbox to the bound, then emit() waits. Nothing is dropped.
    count, chunk = 10000, "x" * 4000
    emitted = []
    reg = TaskRegistry()

    if kind == "async":
        @task("stream", registry=reg)
        async def stream(value, ctx):
            for i in range(count):
                await ctx.emit(chunk)
                emitted.append(i)
            return "done"
    else:
        @task("stream", registry=reg)
        def stream(value, ctx):
            for i in range(count):
                ctx.emit(chunk)
                emitted.append(i)
            return "done"

    async def scenario():
        # A broker silent for long would make the worker reconnect: give it all the time.
        async with serving(reg, outbox_bytes=64 * 1024, heartbeat_liveness=100) as (
                broker, worker, ident, _):
            broker.sock.setsockopt(zmq.RCVHWM, 10)
            broker.send(ident, p.Job("job-f", "stream", pack(None), 1, 0))
            await asyncio.sleep(1.0)
            assert len(emitted) < count, "the handler never waited for the slow broker"
            # Past the bound: the report that crossed it, and for threads the reports in flight.
            past = 1 if kind == "async" else _THREAD_REPORTS_IN_FLIGHT + 1
            assert worker._outbox_size <= 64 * 1024 + past * (len(chunk) + 64)
            got = []
            while len(got) <= count:
                msg = p.decode((await broker.sock.recv_multipart())[1:])
                if not isinstance(msg, p.Heartbeat):
                    got.append(msg)
            assert got[:count] == [p.Chunk("job-f", 1, chunk)] * count
            assert got[count] == p.Result("job-f", 1, pack("done"))

    run(scenario())


# ---- failures, timeouts, cancellation ----------------------------------------------------------


def failing_registry() -> TaskRegistry:
    reg = TaskRegistry()

    @task("boom", registry=reg)
    async def boom(value, ctx):
        raise ValueError("bad thing")

    @task("refuse", registry=reg)
    def refuse(value, ctx):
        raise NonRetryableError("never works")

    @task("unpackable", registry=reg)
    async def unpackable(value, ctx):
        return object()

    @task("raise", registry=reg)
    async def raise_(value, ctx):
        raise ValueError(value.decode("utf-8", "surrogateescape"))  # bytes that are not UTF-8 too

    return reg


@pytest.mark.parametrize("job_type, error, retryable", [
    ("boom", "ValueError: bad thing", True),
    ("refuse", "NonRetryableError: never works", False),
    ("missing", "unknown job type 'missing'", False),
    ("unpackable", "result is not msgpack-serializable", False),
])
def test_failures(job_type, error, retryable):
    async def scenario():
        async with serving(failing_registry()) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-f", job_type, pack(None), 2, 30))
            _, failure = await broker.expect(p.Failure)
            assert (failure.job_id, failure.attempt) == ("job-f", 2)
            assert failure.error.startswith(error), failure.error
            assert failure.retryable is retryable

    run(scenario())


@pytest.mark.parametrize("message, sent", [
    # "ValueError: " is 12 bytes and "é" 2: the limit falls inside a character, which is left out.
    (("x" + "é" * 100_000).encode(), "ValueError: x" + "é" * ((p.MAX_ERROR_BYTES - 13) // 2)),
    # A byte that is not UTF-8 (a lone surrogate once decoded) becomes "?", not a failed send.
    (b"bad \xff byte", "ValueError: bad ? byte"),
])
def test_an_error_is_sent_as_utf8_of_at_most_the_shared_limit(message, sent):
    async def scenario():
        async with serving(failing_registry()) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-e", "raise", pack(message), 1, 30))
            _, failure = await broker.expect(p.Failure)
            assert failure.error == sent
            assert len(failure.error.encode()) <= p.MAX_ERROR_BYTES

    run(scenario())


def test_input_that_is_not_msgpack_fails_without_retry():
    async def scenario():
        async with serving(make_registry()) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-x", "echo", b"\xc1", 1, 30))
            _, failure = await broker.expect(p.Failure)
            assert failure.error.startswith("invalid job input") and failure.retryable is False

    run(scenario())


def test_timeout_is_a_retryable_failure():
    reg = TaskRegistry()
    seen = {}

    @task("slow", registry=reg)
    async def slow(value, ctx):
        seen["deadline_in"] = ctx.time_left()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["cancelled"] = ctx.cancelled
            raise

    async def scenario():
        async with serving(reg) as (broker, _, ident, _):
            started = time.monotonic()
            broker.send(ident, p.Job("job-slow", "slow", pack(None), 1, 1))
            _, failure = await broker.expect(p.Failure, timeout=4)
            assert failure == p.Failure("job-slow", 1, "timeout after 1 s", True)
            assert 0.9 <= time.monotonic() - started < 2.5
        assert 0.5 < seen["deadline_in"] <= 1.0
        assert "cancelled" in seen

    run(scenario())


def test_sync_handler_timeout_sets_ctx_cancelled():
    reg = TaskRegistry()
    stopped = threading.Event()

    @task("spin", registry=reg)
    def spin(value, ctx):
        while not ctx.cancelled:
            time.sleep(0.01)
        stopped.set()

    async def scenario():
        async with serving(reg) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-spin", "spin", pack(None), 1, 1))
            _, failure = await broker.expect(p.Failure, timeout=4)
            assert failure == p.Failure("job-spin", 1, "timeout after 1 s", True)
        assert stopped.wait(2)

    run(scenario())


def test_cancel_job_cancels_the_handler_and_answers_canceled():
    reg = TaskRegistry()
    seen = []

    @task("forever", registry=reg)
    async def forever(value, ctx):
        await ctx.progress(0.0, "started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(ctx.cancelled)
            raise

    async def scenario():
        async with serving(reg) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-c", "forever", pack(None), 2, 30))
            await broker.expect(p.Progress)
            broker.send(ident, p.CancelJob("job-c", 1))  # another attempt: not this run
            await broker.expect_nothing(0.3)
            assert seen == []
            broker.send(ident, p.CancelJob("job-c", 2))
            _, canceled = await broker.expect(p.Canceled)
            assert canceled == p.Canceled("job-c", 2)
            broker.send(ident, p.CancelJob("job-c", 2))  # already gone: ignored
            await broker.expect_nothing(0.2)
        assert seen == [True]

    run(scenario())


# ---- heartbeats, reconnects, bad input from the broker -------------------------------------------


def test_heartbeats_when_idle_and_while_a_sync_handler_blocks():
    reg = TaskRegistry()

    @task("block", registry=reg)
    def block(value, ctx):
        time.sleep(1.0)  # holds a pool thread, not the event loop
        return "ok"

    async def scenario():
        async with serving(reg, heartbeat_interval=0.2, heartbeat_liveness=50) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-b", "block", pack(None), 1, 30))
            stamps = []
            while True:
                _, msg = await broker.recv(timeout=2)
                if isinstance(msg, p.Result):
                    break
                assert isinstance(msg, p.Heartbeat)
                stamps.append(time.monotonic())
            assert len(stamps) >= 3  # ~5 in 1 s
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            assert all(0.1 < gap < 0.6 for gap in gaps), gaps  # generous: the CI box is shared

    run(scenario())


def test_no_heartbeat_while_other_messages_flow():
    reg = TaskRegistry()

    @task("chatty", registry=reg)
    async def chatty(value, ctx):
        for i in range(20):
            await ctx.emit(str(i))
            await asyncio.sleep(0.05)
        return None

    async def scenario():
        async with serving(reg, heartbeat_interval=0.2, heartbeat_liveness=50) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-ch", "chatty", pack(None), 1, 30))
            kinds = []
            while not kinds or kinds[-1] != "Result":
                kinds.append(type((await broker.recv())[1]).__name__)
            assert kinds.count("Chunk") == 20 and "Heartbeat" not in kinds

    run(scenario())


def test_reconnects_and_ready_again_after_broker_silence_and_running_job_reports():
    reg = TaskRegistry()

    @task("nap", registry=reg)
    async def nap(value, ctx):
        await asyncio.sleep(1.5)
        return "rested"

    async def scenario():
        async with serving(reg, heartbeat_interval=0.2, heartbeat_liveness=3) as (broker, _, ident, _):
            started = time.monotonic()
            broker.send(ident, p.Job("job-n", "nap", pack(None), 1, 30))
            new_ident, ready = await broker.expect(p.Ready, timeout=2)  # broker said nothing
            assert 0.5 <= time.monotonic() - started < 1.4
            assert new_ident != ident and ready.worker_name == "test-worker"
            while True:  # the broker is back: it heartbeats the new socket until the result
                broker.send(new_ident, p.Heartbeat())
                with contextlib.suppress(asyncio.TimeoutError):
                    sender, msg = await broker.recv(timeout=0.1)
                    if not isinstance(msg, p.Heartbeat):
                        break
            assert sender == new_ident and isinstance(msg, p.Result)
            assert unpack(msg.result) == "rested"

    run(scenario())


def test_broker_heartbeats_keep_the_worker_connected():
    async def scenario():
        async with serving(make_registry(), heartbeat_interval=0.1, heartbeat_liveness=3) as (broker, _, ident, _):
            end = time.monotonic() + 0.8
            while time.monotonic() < end:
                broker.send(ident, p.Heartbeat())
                await asyncio.sleep(0.05)
                with contextlib.suppress(asyncio.TimeoutError):
                    while True:
                        sender, msg = await broker.recv(timeout=0.01)
                        assert isinstance(msg, p.Heartbeat) and sender == ident

    run(scenario())


def test_disconnect_from_broker_makes_the_worker_ready_again():
    async def scenario():
        async with serving(make_registry()) as (broker, _, ident, ready):
            broker.send(ident, p.Disconnect())
            new_ident, again = await broker.expect(p.Ready, timeout=1)
            assert new_ident != ident and again == ready
            broker.send(new_ident, p.Job("job-e", "echo", pack(1), 1, 30))
            assert unpack((await broker.expect(p.Result))[1].result) == 1

    run(scenario())


def test_malformed_broker_messages_are_dropped():
    async def scenario():
        async with serving(make_registry()) as (broker, _, ident, _):
            broker.sock.send_multipart([ident, b"SLUICE/1", bytes([p.Command.JOB]), b"\x95\xa1"])
            broker.sock.send_multipart([ident, b"garbage"])
            broker.sock.send_multipart([ident, b"SLUICE/1", b"\x7f", b"\x90"])
            broker.send(ident, p.Ready("x", "cpp", [], 1, []))  # not a broker command
            broker.send(ident, p.Job("job-ok", "echo", pack("still here"), 1, 30))
            assert unpack((await broker.expect(p.Result))[1].result) == "still here"

    run(scenario())


# ---- built-in tasks through the runtime ---------------------------------------------------------


def test_text_stats_result():
    text = "The cat sat. The cat ran! Did the dog see it?"

    async def scenario():
        async with serving(builtin_registry) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-ts", "text_stats", pack({"text": text}), 1, 30))
            _, result = await broker.expect(p.Result)
            assert unpack(result.result) == {
                "words": 11, "characters": len(text), "sentences": 3,
                "top_words": [["the", 3], ["cat", 2], ["did", 1], ["dog", 1], ["it", 1]]}
            broker.send(ident, p.Job("job-ts2", "text_stats", pack({"txt": 1}), 1, 30))
            _, failure = await broker.expect(p.Failure)
            assert failure.retryable is False
            assert failure.error == "invalid input for text_stats: at /text: Field required"

    run(scenario())


def test_sleep_reports_ten_progress_events():
    async def scenario():
        async with serving(builtin_registry) as (broker, _, ident, _):
            broker.send(ident, p.Job("job-z", "sleep", pack({"ms": 100}), 1, 30))
            fractions = [(await broker.expect(p.Progress))[1].fraction for _ in range(10)]
            assert fractions == pytest.approx([i / 10 for i in range(1, 11)])
            assert unpack((await broker.expect(p.Result))[1].result) == {"slept_ms": 100}

    run(scenario())


# ---- shutdown -----------------------------------------------------------------------------------


def test_stop_disconnects_and_lets_running_jobs_finish():
    async def scenario():
        ctx = zmq.asyncio.Context()
        try:
            broker = FakeBroker(ctx)
            worker = Worker(builtin_registry, WorkerConfig(broker=broker.endpoint), context=ctx)
            running = asyncio.create_task(worker.run())
            ident, _ = await broker.expect(p.Ready)
            broker.send(ident, p.Job("job-g", "sleep", pack({"ms": 300}), 1, 30))
            await broker.expect(p.Progress)
            worker.stop()
            await broker.expect(p.Disconnect)
            broker.send(ident, p.Job("job-late", "echo", pack(1), 1, 30))  # raced the DISCONNECT
            seen = {}
            while "job-g" not in seen or "job-late" not in seen:
                _, msg = await broker.recv()
                if isinstance(msg, (p.Result, p.Failure)):
                    seen[msg.job_id] = msg
            assert isinstance(seen["job-g"], p.Result)
            assert seen["job-late"] == p.Failure("job-late", 1, "worker shutting down", True)
            await asyncio.wait_for(running, 2)
        finally:
            ctx.destroy(linger=0)

    run(scenario())


def test_jobs_past_the_grace_period_are_cancelled_and_fail_retryably():
    async def scenario():
        ctx = zmq.asyncio.Context()
        try:
            broker = FakeBroker(ctx)
            worker = Worker(builtin_registry, WorkerConfig(broker=broker.endpoint, grace_period=0.3),
                            context=ctx)
            running = asyncio.create_task(worker.run())
            ident, _ = await broker.expect(p.Ready)
            broker.send(ident, p.Job("job-long", "sleep", pack({"ms": 20000}), 1, 60))
            await broker.expect(p.Progress, timeout=3)
            stopped = time.monotonic()
            worker.stop()
            await broker.expect(p.Disconnect)
            _, failure = await broker.expect(p.Failure)
            assert failure == p.Failure("job-long", 1, "worker shut down before the job finished", True)
            await asyncio.wait_for(running, 2)
            assert time.monotonic() - stopped < 1.5
        finally:
            ctx.destroy(linger=0)

    run(scenario())


def test_cli_serves_builtin_tasks_and_exits_0_on_sigterm():
    async def scenario():
        ctx = zmq.asyncio.Context()
        try:
            broker = FakeBroker(ctx)
            env = dict(os.environ, SLUICE_BROKER_WORKER_ENDPOINT=broker.endpoint,
                       SLUICE_WORKER_CONCURRENCY="2")
            proc = subprocess.Popen([sys.executable, "-m", "sluice", "--name", "cli-worker",
                                     "--log-level", "debug"],  # per-job lines are debug
                                    env=env, stderr=subprocess.PIPE, text=True)
            try:
                ident, ready = await broker.expect(p.Ready, timeout=8)
                assert ready == p.Ready("cli-worker", "python", BUILTIN_AND_AI_TASKS, 2,
                                         [builtin_registry.get(name).schema for name in BUILTIN_AND_AI_TASKS],
                                         *_declared_models(BUILTIN_AND_AI_TASKS))
                broker.send(ident, p.Job("job-cli", "echo", pack("hi"), 1, 30))
                assert unpack((await broker.expect(p.Result))[1].result) == "hi"
                proc.send_signal(signal.SIGTERM)
                await broker.expect(p.Disconnect)
                code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 5)
                stderr = proc.stderr.read()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert code == 0, stderr
            first = stderr.splitlines()[0]
            assert broker.endpoint in first and ", ".join(BUILTIN_AND_AI_TASKS) in first
            assert "job job-cli started type=echo attempt=1" in stderr
            assert "job job-cli succeeded type=echo attempt=1 duration=" in stderr
        finally:
            ctx.destroy(linger=0)

    run(scenario())
