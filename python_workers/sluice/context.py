"""What a task handler gets besides its input: the job's identity, deadline and a way to report.

Async handlers get a JobContext, whose progress() and emit() are coroutines:

    await ctx.progress(0.5, "half way")
    await ctx.emit("next token")

Sync handlers run in the worker's thread pool and get a SyncJobContext, whose progress() and
emit() are plain, thread-safe calls that hand the message to the event loop and return at once
(unless the outbox is full, above):

    ctx.progress(0.5, "half way")
    ctx.emit("next token")

Messages from one job reach the broker in the order they were made, and before the job's result.
When the broker reads slower than the handler reports, progress() and emit() wait until the
worker's outbox has drained below its bound (WorkerConfig.outbox_bytes): nothing is dropped.
Once the job has finished (result sent, cancelled, timed out) further progress/emit calls are
dropped silently.

Flows: a job started by POST /v1/flows, or one that spawned children, runs with their outcomes in
`ctx.children` (a list of {"id", "type", "status", "result", "error"}, in the order given). A
handler starts children with spawn(); once it returns, the job waits for them without holding a
slot, then runs again with `ctx.children` filled (its return value of the spawning run is not
kept):

    if not ctx.children:
        for task in ("sentiment", "entities"):
            await ctx.spawn(task, {"text": text})
        return None
    return {c["type"]: c["result"] for c in ctx.children}

Cancellation: an async handler is cancelled with asyncio (CancelledError at its next await).
A sync handler cannot be interrupted; it should check `ctx.cancelled` between steps and return
early: its answer is dropped anyway, but its thread stays busy until it returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from typing import Any, Callable

import msgpack

from . import protocol as p

# A callback that sends one message about this job (thread-safety depends on the context kind).
Report = Callable[[p.Message], None]

ON_FAILURE = ("fail_parent", "ignore")
# Children one run may spawn (common/limits.hpp MAX_FLOW_CHILDREN).
MAX_CHILDREN = 100


class TokenUsage:
    """The model tokens one attempt used, streamed ones included: the worker reports them with
    the attempt's RESULT or FAILURE, and the broker settles the job's token budget with them.
    The AI tasks count every model call (ai_tasks.UsageRecorder); another handler that calls a
    model adds what it used with ctx.usage.add()."""

    __slots__ = ("prompt_tokens", "completion_tokens")

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens += max(0, int(prompt_tokens))
        self.completion_tokens += max(0, int(completion_tokens))

    def wire(self) -> tuple[int, int]:
        """The two counts as u32s for the wire (capped)."""
        cap = 2**32 - 1
        return min(self.prompt_tokens, cap), min(self.completion_tokens, cap)


# The usage of the attempt whose handler runs in this context (the worker sets it per job).
_current_usage: contextvars.ContextVar[TokenUsage | None] = contextvars.ContextVar(
    "sluice_job_usage", default=None)


def record_usage(prompt_tokens: int, completion_tokens: int) -> None:
    """Adds a model call's tokens to the usage of the job running in this context; outside a
    job (a direct call, a test) it does nothing."""
    usage = _current_usage.get()
    if usage is not None:
        usage.add(prompt_tokens, completion_tokens)


class _ContextBase:
    """Attributes shared by both context kinds. Read-only for handlers.

    Attributes:
        job_id: the job's id.
        type: the job type (the task name).
        attempt: 1 for the first run, 2 for the first retry, ...
        timeout_s: the job's timeout in seconds; 0 means none.
        deadline: time.monotonic() value at which the worker cancels the handler, or None when
            the job has no timeout. Compare with time.monotonic(), or use time_left().
        worker_name: the name this worker registered with.
        children: a flow's parent: its children's outcomes, [{"id", "type", "status",
            "result", "error"}, ...] in the order given; [] for any other job.
        usage: the model tokens this attempt used so far (TokenUsage).
    """

    def __init__(self, job: p.Job, worker_name: str, report: Report,
                 children: list[dict[str, Any]] | None = None) -> None:
        self.job_id = job.job_id
        self.type = job.type
        self.attempt = job.attempt
        self.timeout_s = job.timeout_s
        self.worker_name = worker_name
        self.deadline: float | None = None
        self.usage = TokenUsage()
        self._report = report
        self._cancelled = False
        self.children = children or []
        # (type, packed input, on_failure) of each child spawned in this run.
        self._spawned: list[tuple[str, bytes, str]] = []

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled, timed out or the worker is shutting it down."""
        return self._cancelled

    def time_left(self) -> float | None:
        """Seconds until the deadline (may be negative), or None when the job has no timeout."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _start_clock(self) -> None:
        # Called by the worker when the handler actually starts (after it got a slot).
        if self.timeout_s:
            self.deadline = time.monotonic() + self.timeout_s

    def _cancel(self) -> None:
        self._cancelled = True

    def _progress_message(self, fraction: float, message: str) -> p.Progress:
        fraction = float(fraction)
        if not math.isfinite(fraction):
            raise ValueError(f"progress fraction must be a finite number, got {fraction}")
        if not isinstance(message, str):
            raise TypeError("progress message must be a str")
        return p.Progress(self.job_id, self.attempt, min(max(fraction, 0.0), 1.0), message)

    def _add_child(self, type: str, input: Any, on_failure: str) -> None:
        if not isinstance(type, str) or not type:
            raise TypeError("spawn() takes a job type name (str)")
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {', '.join(ON_FAILURE)}, got {on_failure!r}")
        if len(self._spawned) >= MAX_CHILDREN:
            raise ValueError(f"a run spawns at most {MAX_CHILDREN} children")
        self._spawned.append((type, msgpack.packb(input, use_bin_type=True), on_failure))

    def _spawn_message(self) -> p.Spawn | None:
        """The SPAWN that ends this run, or None when it spawned nothing."""
        if not self._spawned:
            return None
        types, inputs, on_failure = (list(column) for column in zip(*self._spawned))
        return p.Spawn(self.job_id, self.attempt, types, inputs, on_failure, *self.usage.wire())

    def _chunk_message(self, text: str) -> p.Chunk:
        if not isinstance(text, str):
            raise TypeError(f"emit() takes a str, got {type(text).__name__}")
        return p.Chunk(self.job_id, self.attempt, text)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} job_id={self.job_id} type={self.type} attempt={self.attempt}>"


class JobContext(_ContextBase):
    """Context of an async handler: `await ctx.progress(...)`, `await ctx.emit(...)`."""

    def __init__(self, job: p.Job, worker_name: str, report: Report,
                 room: asyncio.Event | None = None,
                 children: list[dict[str, Any]] | None = None) -> None:
        super().__init__(job, worker_name, report, children)
        # Set while the worker's outbox has room; None: reports never wait.
        self._room = room

    async def progress(self, fraction: float, message: str = "") -> None:
        """Reports progress: fraction in 0..1 (clamped), and a short message."""
        self._report(self._progress_message(fraction, message))
        await self._after_report()

    async def emit(self, text: str) -> None:
        """Streams a chunk of output text (e.g. LLM tokens) to the job's listeners."""
        self._report(self._chunk_message(text))
        await self._after_report()

    async def spawn(self, type: str, input: Any = None, *, on_failure: str = "fail_parent") -> None:
        """Starts a child job of `type` with `input` once this run returns (on_failure:
        "fail_parent" fails this job if the child fails; "ignore" runs it anyway). The job then
        waits for all its children and runs again with their outcomes in `ctx.children`."""
        self._add_child(type, input, on_failure)

    async def _after_report(self) -> None:
        if self._room is not None and not self._room.is_set():
            await self._room.wait()
        else:
            # Lets heartbeats, other jobs and cancellation run even in a handler that emits in
            # a loop.
            await asyncio.sleep(0)


class SyncJobContext(_ContextBase):
    """Context of a sync handler (runs in a thread): `ctx.progress(...)`, `ctx.emit(...)`."""

    def progress(self, fraction: float, message: str = "") -> None:
        """Reports progress: fraction in 0..1 (clamped), and a short message. Thread-safe."""
        self._report(self._progress_message(fraction, message))

    def emit(self, text: str) -> None:
        """Streams a chunk of output text to the job's listeners. Thread-safe."""
        self._report(self._chunk_message(text))

    def spawn(self, type: str, input: Any = None, *, on_failure: str = "fail_parent") -> None:
        """JobContext.spawn() for a sync handler."""
        self._add_child(type, input, on_failure)
