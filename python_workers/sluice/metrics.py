"""Prometheus metrics of a Python worker, served by `sluice-worker --metrics-port PORT`.

prometheus_client keeps the figures and serves them at http://HOST:PORT/metrics:

    sluice_worker_jobs_total{type, outcome}           jobs finished here: succeeded, failed, canceled,
                                                      rate_limited, spawned (ended waiting for children)
    sluice_worker_job_duration_seconds{type}          handler run time (histogram)
    sluice_worker_jobs_in_flight{type}                handlers running now
    sluice_worker_model_tokens_total{model, kind}     model tokens, kind "prompt" or "completion"
    sluice_worker_model_tokens_per_second{model}      completion tokens per second of each model
                                                      call (histogram)

Labels are job types (what this worker serves) and model names, never job ids, so the number of
series stays bounded. Without --metrics-port nothing is counted: a worker pays for metrics only
when someone reads them.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Job durations from a 10 ms echo to a 10 minute generation.
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# From a slow CPU model (a few tokens per second) to a hosted one (hundreds).
_RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class WorkerMetrics:
    """The figures of one worker process, in a registry of their own. Thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("sluice_worker_jobs", "Jobs this worker finished, by type and outcome.",
                            ["type", "outcome"], registry=self.registry)
        self.duration = Histogram("sluice_worker_job_duration_seconds",
                                  "Run time of a job's handler, from its start to its outcome.",
                                  ["type"], buckets=_DURATION_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("sluice_worker_jobs_in_flight", "Handlers running now.", ["type"],
                               registry=self.registry)
        self.tokens = Counter("sluice_worker_model_tokens", "Model tokens, by model and kind.",
                              ["model", "kind"], registry=self.registry)
        self.rate = Histogram("sluice_worker_model_tokens_per_second",
                              "Completion tokens per second of each model call.", ["model"],
                              buckets=_RATE_BUCKETS, registry=self.registry)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serves /metrics on `address`:`port` from a daemon thread. Raises OSError when the
        port cannot be bound."""
        start_http_server(port, addr=address, registry=self.registry)

    def started(self, job_type: str) -> None:
        self.in_flight.labels(job_type).inc()

    def finished(self, job_type: str, outcome: str, seconds: float | None) -> None:
        """A job ended with `outcome`; `seconds` is its handler's run time, None if it never
        started (a job that was canceled while waiting for a slot)."""
        self.jobs.labels(job_type, outcome).inc()
        if seconds is not None:
            self.in_flight.labels(job_type).dec()
            self.duration.labels(job_type).observe(seconds)

    def model_call(self, model: str, prompt_tokens: int, completion_tokens: int,
                   seconds: float) -> None:
        self.tokens.labels(model, "prompt").inc(prompt_tokens)
        self.tokens.labels(model, "completion").inc(completion_tokens)
        if completion_tokens and seconds > 0:
            self.rate.labels(model).observe(completion_tokens / seconds)


# The process's metrics once serve_metrics() ran; None: metrics are off.
_current: WorkerMetrics | None = None


def serve_metrics(port: int, address: str = "0.0.0.0") -> WorkerMetrics:
    """Turns this process's metrics on and serves them; returns them. Raises OSError when the
    port cannot be bound."""
    global _current
    metrics = WorkerMetrics()
    metrics.serve(port, address)
    _current = metrics
    return metrics


def current() -> WorkerMetrics | None:
    """This process's metrics, or None when they are off."""
    return _current


def model_callbacks() -> list[Any]:
    """LangChain callbacks that count each model call's tokens and speed; none when metrics are
    off. Pass them with a chain's other callbacks."""
    return [] if _current is None else [_model_call_metrics_class()(_current)]


@functools.cache
def _model_call_metrics_class() -> type:
    # Made on first use: the worker runtime and its job metrics need no LangChain.
    from langchain_core.callbacks import BaseCallbackHandler

    class ModelCallMetrics(BaseCallbackHandler):
        """Times each model call from its start to its end and counts its tokens."""

        def __init__(self, metrics: WorkerMetrics) -> None:
            super().__init__()
            self._metrics = metrics
            self._started: dict[UUID, float] = {}
            self._lock = threading.Lock()

        def _start(self, run_id: UUID) -> None:
            with self._lock:
                self._started[run_id] = time.monotonic()

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                                **kwargs: Any) -> None:
            self._start(run_id)

        def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID,
                         **kwargs: Any) -> None:
            self._start(run_id)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            with self._lock:
                self._started.pop(run_id, None)

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            with self._lock:
                started = self._started.pop(run_id, None)
            seconds = time.monotonic() - started if started is not None else 0.0
            for generations in response.generations:
                for generation in generations:
                    message = getattr(generation, "message", None)
                    usage = getattr(message, "usage_metadata", None) or {}
                    meta = getattr(message, "response_metadata", None) or {}
                    model = meta.get("model_name") or meta.get("model") or "unknown"
                    self._metrics.model_call(str(model), int(usage.get("input_tokens") or 0),
                                             int(usage.get("output_tokens") or 0), seconds)

    return ModelCallMetrics
