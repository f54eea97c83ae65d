"""The asyncio worker runtime: connects to the broker backend and runs jobs (PROTOCOL.md,
"worker <-> broker" and "Heartbeats").

One event loop runs everything:

- the DEALER socket is a plain (not zmq.asyncio) socket whose ZMQ_FD the loop watches: when it
  signals, and after every send (a send can consume the signal), every waiting message is read
  and dispatched to handle_<command>(). Sends go straight to libzmq: no future per message;
- the liveness loop reconnects (new socket, READY again) when the broker was silent for
  HEARTBEAT_LIVENESS intervals; a DISCONNECT from the broker does the same;
- the heartbeat loop sends HEARTBEAT whenever nothing else was sent for HEARTBEAT_INTERVAL;
- each job runs as its own asyncio task: async handlers are awaited on the loop, sync handlers run
  in a thread pool, so neither can starve the two loops above (an async handler that computes for
  seconds without awaiting would: make such work a sync handler).

Every socket call happens on the loop thread; sends never block (DONTWAIT). A message the socket
cannot take (its queue is at the high-water mark: the broker reads slower than handlers report)
waits in the worker's outbox, in order, and leaves as soon as the socket has room; nothing is
dropped. The outbox is bounded in bytes: past the bound a handler's progress()/emit() waits until
it has drained (backpressure), while terminal messages always queue (at most one per running
job). Jobs still running when the socket is replaced keep running and report on the new socket
(the broker, having forgotten the old socket, drops those late reports: at-least-once).

The job path is a handful of small wrappers around the handler call, Dramatiq-middleware style:
    _job_task        waits for a free slot (never more than `concurrency` handlers at once),
                     turns cancellation into CANCELED, sends the terminal message, logs
    _execute         maps the outcome to RESULT or FAILURE (retryable unless NonRetryableError)
A typed task's input is validated into its model (registry.py) when the JOB arrives: an input
that does not fit fails at once, without a retry (the api checked it already: defense in depth).
    _with_timeout    enforces timeout_s -> FAILURE "timeout after N s" (retryable)
    _invoke          awaits an async handler or runs a sync one in the thread pool
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import inspect
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pydantic
import zmq

from . import protocol as p
from . import tracing
from .context import JobContext, SyncJobContext, _current_usage
from .curve import ClientKeys
from .errors import DecodeError, NonRetryableError, RateLimitedError, SluiceError
from .registry import TaskRegistry, TaskSpec

log = logging.getLogger("sluice.worker")

DEFAULT_BROKER = "tcp://127.0.0.1:5556"


def default_worker_name() -> str:
    """Returns "<hostname>-<pid>", unique enough to tell workers apart in the broker's logs."""
    return f"{socket.gethostname()}-{os.getpid()}"


def endpoints_of(broker: str) -> list[str]:
    """The endpoints a WorkerConfig.broker lists (comma-separated, blanks around each ignored)."""
    return [endpoint.strip() for endpoint in broker.split(",") if endpoint.strip()]


@dataclass
class WorkerConfig:
    """Everything a Worker can be told; each default is what sluice-worker uses."""

    # Broker backend endpoint the worker's DEALER connects to; comma-separated, the leader's and
    # its standbys' (README.md, "A standby broker"): one at a time, the first to begin with, and
    # the next whenever the broker it has goes silent (only the leader binds its socket).
    broker: str = DEFAULT_BROKER
    # Name sent in READY; shows up in the broker's logs and the job's `worker` field.
    name: str = field(default_factory=default_worker_name)
    # Jobs run at once; sent in READY as the worker's credit. Also the thread pool size.
    concurrency: int = 4
    # Seconds running jobs get to finish after stop() before they are cancelled. Ten seconds
    # covers a typical short job and stays well under a container runtime's 30 s kill timeout.
    grace_period: float = 10.0
    # Heartbeat period and liveness (PROTOCOL.md); only tests should change these.
    heartbeat_interval: float = p.HEARTBEAT_INTERVAL
    heartbeat_liveness: int = p.HEARTBEAT_LIVENESS
    # Linger (seconds) when closing the socket at shutdown, so the last reports reach the broker.
    close_linger: float = 1.0
    # Largest job input in bytes, as the broker's SLUICE_MAX_INPUT_BYTES: libzmq refuses a bigger
    # frame (and drops the connection) before allocating it.
    max_input_bytes: int = p.DEFAULT_MAX_INPUT
    # Bytes of reports the outbox holds while the socket is full before handlers' progress() and
    # emit() wait for it to drain: 8 MiB is thousands of LLM chunks, far more than a broker that
    # keeps up ever leaves behind, and small next to a model's memory.
    outbox_bytes: int = 8 * 1024 * 1024
    # This worker's CURVE keypair and the broker's public key (README.md, Security): with them
    # the socket is a CURVE client, so only the holder of the broker's secret key gets its
    # messages. None: no CURVE (the broker must not require it).
    curve: ClientKeys | None = None
    # A sluice.metrics.WorkerMetrics to count jobs in (sluice-worker --metrics-port); None: none.
    metrics: Any = None


# zmq constants as plain ints: pyzmq's enums cost more to combine than a send (Worker._send).
_NOWAIT = int(zmq.DONTWAIT)
_MORE_NOWAIT = int(zmq.SNDMORE | zmq.DONTWAIT)
_EVENTS, _POLLIN, _POLLOUT = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.POLLOUT)
_RCVMORE = int(zmq.RCVMORE)
# While the outbox holds messages it is retried this often (seconds), besides whenever the
# socket's descriptor signals: libzmq's signal is edge-triggered and may have been consumed.
_OUTBOX_RETRY = 0.05
# Reports from sync handlers on their way to the loop or held while the outbox is full: what a
# thread can put past the outbox's bound before its report() blocks.
_THREAD_REPORTS_IN_FLIGHT = 64


class _Timeout(SluiceError):
    """The handler ran past the job's timeout_s."""


# Why a job task was cancelled: the broker sent CANCEL_JOB, or the worker is shutting down.
_CANCELED_BY_BROKER = "canceled"
_SHUTDOWN = "shutdown"


class _Run:
    """One job this worker holds, from JOB to its terminal message."""

    __slots__ = ("job", "spec", "input", "ctx", "task", "cancel_reason", "finished", "received")

    def __init__(self, job: p.Job, spec: TaskSpec, value: Any) -> None:
        self.job = job
        self.spec = spec
        self.input = value
        self.ctx: JobContext | SyncJobContext | None = None
        self.task: asyncio.Task | None = None
        self.cancel_reason: str | None = None
        self.finished = False
        self.received = time.monotonic()


class Worker:
    """Serves the tasks of a registry to a broker until stop() is called.

    Usage: `await Worker(registry, WorkerConfig(...)).run()`. Not thread-safe: call run() and
    stop() from the loop that runs it (stop() is safe to call from a signal handler installed
    with loop.add_signal_handler).
    """

    def __init__(self, registry: TaskRegistry, config: WorkerConfig | None = None,
                 context: zmq.Context | None = None) -> None:
        self.config = config or WorkerConfig()
        if self.config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if len(registry) == 0:
            raise ValueError("the registry has no tasks: nothing to serve")
        schema_bytes = sum(len(schema.encode()) for schema in registry.schemas())
        if schema_bytes > p.MAX_READY_SCHEMA_BYTES:
            raise ValueError(f"the tasks' input schemas total {schema_bytes} bytes, more than "
                             f"{p.MAX_READY_SCHEMA_BYTES} (the broker would ignore them)")
        self.registry = registry
        self._zmq = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._endpoint_index = 0
        self._read_pending = False  # a read of the socket is scheduled on the loop
        # Encoded messages the socket could not take yet, oldest first, and their size in bytes.
        self._outbox: collections.deque[tuple[bytes, bytes, bytes]] = collections.deque()
        self._outbox_size = 0
        self._outbox_retry: asyncio.TimerHandle | None = None
        # Set while the outbox is under its bound; async handlers' reports wait for it.
        self._room = asyncio.Event()
        self._room.set()
        # Sync handlers (in threads) take a permit per report, given back once the loop has
        # queued it and the outbox is under its bound (`_held_permits` wait for that).
        self._thread_permits = threading.Semaphore(_THREAD_REPORTS_IN_FLIGHT)
        self._held_permits = 0
        self._runs: dict[tuple[str, int], _Run] = {}
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.concurrency, thread_name_prefix="sluice-job")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_send = 0.0
        self._last_recv = 0.0
        self._draining = False
        self._stop_requested = asyncio.Event()
        self._force_stop = asyncio.Event()

    # ---- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connects, serves jobs until stop() is called, then shuts down gracefully and returns.

        Raises only for bugs and broken setup (e.g. an invalid endpoint).
        """
        self._loop = asyncio.get_running_loop()
        self._open_socket()
        loops = [asyncio.create_task(self._liveness_loop(), name="sluice-liveness"),
                 asyncio.create_task(self._heartbeat_loop(), name="sluice-heartbeat")]
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            done, _ = await asyncio.wait([*loops, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # a loop ended: only a bug does that, re-raise it
            await self._shutdown()
        finally:
            for task in [*loops, stop]:
                task.cancel()
            await asyncio.gather(*loops, stop, return_exceptions=True)
            for run in list(self._runs.values()):
                run.task.cancel()
            self._flush()
            if self._outbox:
                log.warning("stopped with %d message(s) the broker never took", len(self._outbox))
            self._close_socket(self.config.close_linger)
            self._release_held_permits()
            self._executor.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        """Asks run() to shut down: stop taking jobs, let running ones finish for up to
        grace_period seconds, then cancel them. A second call cancels them at once."""
        if self._stop_requested.is_set():
            self._force_stop.set()
        else:
            self._stop_requested.set()

    async def _shutdown(self) -> None:
        # 1. Stop taking jobs: DISCONNECT makes the broker forget this worker (and put the jobs
        #    it held back in their queues), so no JOB arrives any more.
        # 2. Let running jobs finish for up to grace_period (a second stop() cuts it short).
        # 3. Cancel what is left; each reports a retryable FAILURE.
        self._draining = True
        self._send(p.Disconnect())
        tasks = [run.task for run in self._runs.values()]
        log.info("shutting down: %d job(s) running, waiting up to %.1f s for them",
                 len(tasks), self.config.grace_period)
        if tasks:
            all_done = asyncio.create_task(asyncio.wait(tasks))
            forced = asyncio.create_task(self._force_stop.wait())
            await asyncio.wait([all_done, forced], timeout=self.config.grace_period,
                               return_when=asyncio.FIRST_COMPLETED)
            all_done.cancel()
            forced.cancel()
        left = [run for run in self._runs.values() if not run.task.done()]
        for run in left:
            run.cancel_reason = _SHUTDOWN
            run.task.cancel()
        if left:
            log.warning("grace period over: cancelled %d job(s)", len(left))
            await asyncio.wait([run.task for run in left], timeout=2.0)
        log.info("worker %s stopped", self.config.name)

    # ---- socket ---------------------------------------------------------------------------

    def _open_socket(self) -> None:
        sock = zmq.Socket(self._zmq, zmq.DEALER)
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_input_bytes + p.FRAME_HEADROOM)
        if self.config.curve is not None:
            sock.curve_serverkey = self.config.curve.server_key
            sock.curve_publickey = self.config.curve.public_key
            sock.curve_secretkey = self.config.curve.secret_key
        sock.connect(self._endpoint())
        self._sock = sock
        self._loop.add_reader(sock.getsockopt(zmq.FD), self._schedule_read)
        self._last_recv = time.monotonic()  # give the broker a full liveness period
        # READY goes first on a new socket, ahead of whatever the outbox still holds.
        self._queue(p.Ready(self.config.name, "python", self.registry.names(),
                            self.config.concurrency, self.registry.schemas(), *self.registry.models()),
                    first=True)
        self._flush()

    def _close_socket(self, linger: float) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock.getsockopt(zmq.FD))
            self._sock.close(linger=int(linger * 1000))
            self._sock = None

    def _endpoint(self) -> str:
        """The broker endpoint this worker connects to now (config.broker lists them)."""
        endpoints = endpoints_of(self.config.broker)
        return endpoints[self._endpoint_index % len(endpoints)]

    def _reconnect(self, why: str, next_endpoint: bool = False) -> None:
        """A new socket and READY again; with `next_endpoint` (the broker went silent) to the
        next endpoint listed: a standby that has taken over, or the same one when only one is."""
        if next_endpoint:
            self._endpoint_index += 1
        log.warning("%s: reconnecting to %s and sending READY again", why, self._endpoint())
        self._close_socket(0)
        self._open_socket()

    def _send(self, msg: p.Message) -> None:
        """Sends `msg` without blocking, or keeps it in the outbox (after anything already
        waiting there) until the socket has room. Loop thread only."""
        self._queue(msg)
        self._flush()

    def _queue(self, msg: p.Message, first: bool = False) -> None:
        frames = p.encode(msg)
        if first:
            self._outbox.appendleft(frames)
        else:
            self._outbox.append(frames)
        self._outbox_size += len(frames[2])

    def _flush(self) -> None:
        """Hands the outbox to the socket, oldest first, until it is empty or the socket is full
        (its queue at the high-water mark, the broker reading slower than handlers report); then
        retries soon. Loop thread only."""
        sock, outbox = self._sock, self._outbox
        try:
            while outbox and sock is not None:
                signature, command, body = outbox[0]
                try:
                    # Frame by frame with plain int flags: send_multipart combines zmq's flag
                    # enums per frame, which costs more than the send. A DEALER queues a message
                    # whole or not at all, so the first frame is the one that can fail.
                    sock.send(signature, _MORE_NOWAIT)
                    sock.send(command, _MORE_NOWAIT)
                    sock.send(body, _NOWAIT)
                except zmq.Again:
                    break
                except zmq.ZMQError as error:  # not a full queue: this message can never go
                    log.warning("dropped a message to the broker: %s", error)
                outbox.popleft()
                self._outbox_size -= len(body)
                self._last_send = time.monotonic()
        finally:
            self._schedule_read()  # libzmq may have taken the socket's signal while sending
        if self._outbox_size > self.config.outbox_bytes:
            self._room.clear()
        else:
            self._room.set()
            self._release_held_permits()
        if outbox and self._outbox_retry is None:
            self._outbox_retry = self._loop.call_later(_OUTBOX_RETRY, self._retry_outbox)

    def _retry_outbox(self) -> None:
        self._outbox_retry = None
        self._flush()

    # ---- reading, and the two loops ---------------------------------------------------------

    def _schedule_read(self) -> None:
        if not self._read_pending:
            self._read_pending = True
            self._loop.call_soon(self._read_waiting)

    def _read_waiting(self) -> None:
        """Reads and dispatches every message waiting on the socket: one wake-up per burst."""
        self._read_pending = False
        sock = self._sock
        while sock is not None and sock is self._sock and sock.getsockopt(_EVENTS) & _POLLIN:
            frames = [sock.recv(_NOWAIT)]
            while sock.getsockopt(_RCVMORE):
                frames.append(sock.recv(_NOWAIT))
            self._last_recv = time.monotonic()  # any message is a sign of life
            self._dispatch(frames)
        if self._outbox and sock is not None and sock.getsockopt(_EVENTS) & _POLLOUT:
            self._flush()

    async def _liveness_loop(self) -> None:
        # Replace the socket and READY again once the broker has been silent for
        # HEARTBEAT_LIVENESS intervals (it heartbeats even when it has no work for us).
        silence = self.config.heartbeat_interval * self.config.heartbeat_liveness
        while True:
            wait = self._last_recv + silence - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif self._draining:
                self._last_recv = time.monotonic()  # leaving anyway: never reconnect
            else:
                self._reconnect(f"broker silent for {silence:.1f} s", next_endpoint=True)

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval
        while True:
            due = self._last_send + interval
            now = time.monotonic()
            if now < due:
                await asyncio.sleep(due - now)
            elif not self._draining and not self._outbox:  # else it would only queue behind it
                self._send(p.Heartbeat())
            else:
                await asyncio.sleep(interval)

    def _dispatch(self, frames: list[bytes]) -> None:
        try:
            msg = p.decode(frames)
        except DecodeError as exc:
            log.warning("dropped a malformed message from the broker: %s", exc)
            return
        if isinstance(msg, p.Job):
            self._handle_job(msg)
        elif isinstance(msg, p.CancelJob):
            self._handle_cancel_job(msg)
        elif isinstance(msg, p.Disconnect):
            self._handle_disconnect()
        elif not isinstance(msg, p.Heartbeat):
            log.warning("dropped %s: not a broker-to-worker command", msg.COMMAND.name)

    # ---- handle_<command> -------------------------------------------------------------------

    def _handle_job(self, job: p.Job) -> None:
        key = (job.job_id, job.attempt)
        if self._draining:
            self._send(p.Failure(job.job_id, job.attempt, "worker shutting down", True))
            return
        if key in self._runs:
            log.warning("dropped JOB %s attempt %d: already running it", job.job_id, job.attempt)
            return
        spec = self.registry.get(job.type)
        if spec is None:
            self._reject(job, f"unknown job type '{job.type}': this worker serves "
                              f"{', '.join(self.registry.names())}")
            return
        try:
            value = msgpack.unpackb(job.input, raw=False, strict_map_key=False)
        except Exception as exc:
            self._reject(job, f"invalid job input: not one msgpack value ({exc})")
            return
        if spec.input_model is not None:
            try:
                value = spec.input_model.model_validate(value, strict=True)
            except pydantic.ValidationError as exc:
                self._reject(job, _error_text(f"invalid input for {job.type}: {_validation_text(exc)}"))
                return
        try:
            children = msgpack.unpackb(job.children, raw=False, strict_map_key=False) if job.children else []
        except Exception as exc:
            self._reject(job, f"invalid children outcomes: not one msgpack value ({exc})")
            return
        run = _Run(job, spec, value)
        if spec.is_async:
            run.ctx = JobContext(job, self.config.name, lambda msg: self._report(run, msg),
                                 self._room, children)
        else:
            run.ctx = SyncJobContext(job, self.config.name, self._threadsafe_report(run), children)
        run.task = asyncio.create_task(self._job_task(run))
        self._runs[key] = run

    def _handle_cancel_job(self, msg: p.CancelJob) -> None:
        run = self._runs.get((msg.job_id, msg.attempt))
        if run is None:
            log.info("CANCEL_JOB for job %s attempt %d: not running here", msg.job_id, msg.attempt)
            return
        run.cancel_reason = _CANCELED_BY_BROKER
        run.ctx._cancel()
        run.task.cancel()

    def _handle_disconnect(self) -> None:
        if not self._draining:
            self._reconnect("broker sent DISCONNECT")

    def _reject(self, job: p.Job, error: str) -> None:
        log.info("job %s failed type=%s attempt=%d duration=0.000s: %s",
                 job.job_id, job.type, job.attempt, error)
        self._send(p.Failure(job.job_id, job.attempt, error, False))

    # ---- reports from handlers -------------------------------------------------------------

    def _report(self, run: _Run, msg: p.Message) -> None:
        if not run.finished:  # after the terminal message a job says nothing more
            self._send(msg)

    def _threadsafe_report(self, run: _Run):
        loop, permits = self._loop, self._thread_permits

        def report(msg: p.Message) -> None:
            # Blocks while _THREAD_REPORTS_IN_FLIGHT reports are on their way or held.
            while not permits.acquire(timeout=_OUTBOX_RETRY):
                if run.finished or loop.is_closed():
                    return  # nobody would send it
            try:
                loop.call_soon_threadsafe(self._report_from_thread, run, msg)
            except RuntimeError:
                permits.release()  # the loop is closed: the worker is gone, nobody to tell

        return report

    def _report_from_thread(self, run: _Run, msg: p.Message) -> None:
        self._report(run, msg)
        self._held_permits += 1
        if self._outbox_size <= self.config.outbox_bytes:
            self._release_held_permits()

    def _release_held_permits(self) -> None:
        for _ in range(self._held_permits):
            self._thread_permits.release()
        self._held_permits = 0

    # ---- the job path: small wrappers around the handler call -------------------------------

    async def _job_task(self, run: _Run) -> None:
        job, started = run.job, None
        _current_usage.set(run.ctx.usage)  # this task's own context: the handler's model calls count here
        with tracing.job_span(job, self.config.name) as span:
            try:
                async with self._slots:
                    started = time.monotonic()
                    if self.config.metrics is not None:
                        self.config.metrics.started(job.type)
                    run.ctx._start_clock()
                    log.debug("job %s started type=%s attempt=%d", job.job_id, job.type, job.attempt)
                    reply = await self._execute(run)
            except asyncio.CancelledError:
                run.ctx._cancel()
                if run.cancel_reason == _SHUTDOWN:
                    reply = p.Failure(job.job_id, job.attempt,
                                      "worker shut down before the job finished", True)
                else:
                    reply = p.Canceled(job.job_id, job.attempt)
            tracing.end_job_span(span, reply)
        self._finish(run, reply, started)

    async def _execute(self, run: _Run) -> p.Message:
        job = run.job
        try:
            value = await self._with_timeout(run, self._invoke(run))
        except _Timeout:
            run.ctx._cancel()
            return p.Failure(job.job_id, job.attempt, f"timeout after {job.timeout_s} s", True,
                             *run.ctx.usage.wire())
        except RateLimitedError as exc:
            retry_after_ms = min(int(exc.retry_after * 1000), 2**32 - 1)
            return p.RateLimited(job.job_id, job.attempt, retry_after_ms, _error_text(_describe(exc)))
        except Exception as exc:
            return p.Failure(job.job_id, job.attempt, _error_text(_describe(exc)),
                             not isinstance(exc, NonRetryableError), *run.ctx.usage.wire())
        spawn = run.ctx._spawn_message()
        if spawn is not None:
            return spawn
        try:
            return p.Result(job.job_id, job.attempt, msgpack.packb(value, use_bin_type=True),
                            *run.ctx.usage.wire())
        except Exception as exc:
            return p.Failure(job.job_id, job.attempt,
                             _error_text(f"result is not msgpack-serializable: {_describe(exc)}"), False,
                             *run.ctx.usage.wire())

    @staticmethod
    async def _with_timeout(run: _Run, awaitable: Any) -> Any:
        deadline = run.ctx.deadline
        if deadline is None:
            return await awaitable
        try:
            # asyncio.timeout, unlike wait_for, runs the handler in this task: no second task
            # per job.
            async with asyncio.timeout_at(_loop_time(deadline)):
                return await awaitable
        except asyncio.TimeoutError:
            if time.monotonic() >= deadline:
                raise _Timeout() from None
            raise  # the handler's own TimeoutError: an ordinary failure

    async def _invoke(self, run: _Run) -> Any:
        if run.spec.is_async:
            return await run.spec.fn(run.input, run.ctx)
        # In a copy of this task's context, so the job's span is current in the thread too.
        result = await self._loop.run_in_executor(self._executor, contextvars.copy_context().run,
                                                  run.spec.fn, run.input, run.ctx)
        if inspect.isawaitable(result):  # e.g. a callable object with an async __call__
            result = await result
        return result

    def _finish(self, run: _Run, reply: p.Message, started: float | None) -> None:
        run.finished = True
        self._runs.pop((run.job.job_id, run.job.attempt), None)
        self._send(reply)
        job = run.job
        duration = time.monotonic() - (started if started is not None else run.received)
        if self.config.metrics is not None:
            outcome = {p.Result: "succeeded", p.Failure: "failed",
                       p.Spawn: "spawned", p.RateLimited: "rate_limited"}.get(type(reply), "canceled")
            self.config.metrics.finished(job.type, outcome, duration if started is not None else None)
        if isinstance(reply, p.Result):
            # Debug only: one line per successful job costs a busy worker a tenth of its time.
            log.debug("job %s succeeded type=%s attempt=%d duration=%.3fs",
                     job.job_id, job.type, job.attempt, duration)
        elif isinstance(reply, p.Spawn):
            log.info("job %s spawned %d child(ren) type=%s attempt=%d duration=%.3fs: waiting for them",
                     job.job_id, len(reply.types), job.type, job.attempt, duration)
        elif isinstance(reply, p.Failure):
            log.info("job %s failed type=%s attempt=%d duration=%.3fs retryable=%s: %s",
                     job.job_id, job.type, job.attempt, duration, reply.retryable, reply.error)
        elif isinstance(reply, p.RateLimited):
            log.info("job %s rate limited type=%s attempt=%d duration=%.3fs retry_after_ms=%d: %s",
                     job.job_id, job.type, job.attempt, duration, reply.retry_after_ms, reply.error)
        else:
            log.info("job %s canceled type=%s attempt=%d duration=%.3fs",
                     job.job_id, job.type, job.attempt, duration)


def _loop_time(deadline: float) -> float:
    """The event loop's clock value at the time.monotonic() value `deadline`."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _describe(exc: BaseException) -> str:
    """Returns "TypeName: message" for a FAILURE's error field."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _validation_text(exc: pydantic.ValidationError) -> str:
    """The first of a model's validation errors as "at /json/pointer: message" (the api's path
    form), and how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    pointer = "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"at {pointer}: {first['msg']}{more}" if pointer else f"{first['msg']}{more}"


def _error_text(text: str) -> str:
    """Returns `text` cut to p.MAX_ERROR_BYTES of UTF-8, whole characters only, as the broker would
    cut it: a longer FAILURE only costs bandwidth, and one past the broker's frame limit gets this
    worker disconnected. A lone surrogate (from a surrogateescape'd path, say), which UTF-8 cannot
    carry and msgpack refuses to encode, becomes '?'."""
    return text.encode("utf-8", "replace")[:p.MAX_ERROR_BYTES].decode("utf-8", "ignore")
