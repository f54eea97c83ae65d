"""OpenTelemetry spans of a Python worker: one per job attempt, one per LangChain model call.

Every JOB carries the W3C traceparent of the broker's dispatch span (itself under the api's
submit span and the caller's trace, if the submit had one). The worker's span for the attempt,
"job {type}", descends from it, and each model call the job's chains make, "chat {model}",
descends from the job's span; so one trace shows a job from the HTTP request to the tokens.

Spans are exported over OTLP/HTTP to SLUICE_OTLP_ENDPOINT (the base URL of a collector, e.g.
http://127.0.0.1:4318; spans go to its /v1/traces), the variable the api and the broker read.
Unset: the OpenTelemetry API's no-op tracer, and no span costs more than a function call.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import protocol as p

ENDPOINT_ENV = "SLUICE_OTLP_ENDPOINT"
_TRACER_NAME = "sluice.worker"

# The provider once setup() ran with an endpoint; None: spans are off.
_provider: Any = None


def setup(worker_name: str, endpoint: str | None = None) -> bool:
    """Turns span export on for this process when `endpoint` (default: SLUICE_OTLP_ENDPOINT) is
    set; returns whether it did. Raises ValueError for an endpoint that is not http(s)://."""
    global _provider
    endpoint = endpoint if endpoint is not None else os.environ.get(ENDPOINT_ENV, "")
    if not endpoint:
        return False
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"{ENDPOINT_ENV}={endpoint!r}: must be an http:// or https:// URL")
    # The SDK and the exporter only when asked for: a worker without traces never imports them.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"service.name": "sluice-worker", "service.instance.id": worker_name}))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    _provider = provider
    return True


def shutdown() -> None:
    """Sends the spans that wait and stops the exporter (at the worker's exit)."""
    if _provider is not None:
        _provider.shutdown()


def _tracer() -> trace.Tracer:
    return (_provider or trace.get_tracer_provider()).get_tracer(_TRACER_NAME)


@contextlib.contextmanager
def job_span(job: p.Job, worker_name: str) -> Iterator[trace.Span]:
    """The span of one attempt of `job`, current while the block runs. A malformed traceparent
    starts a trace of its own, as the W3C spec asks."""
    if _provider is None:
        yield trace.INVALID_SPAN
        return
    parent = TraceContextTextMapPropagator().extract({"traceparent": job.traceparent}) \
        if job.traceparent else otel_context.Context()
    with _tracer().start_as_current_span(
            f"job {job.type}", context=parent, kind=SpanKind.CONSUMER,
            attributes={"sluice.job.id": job.job_id, "sluice.job.type": job.type,
                        "sluice.job.attempt": job.attempt, "sluice.worker": worker_name},
            record_exception=False, set_status_on_exception=False) as span:
        yield span


def end_job_span(span: trace.Span, reply: p.Message) -> None:
    """Records the attempt's outcome on its span: an error status for a failure."""
    if not span.is_recording():
        return
    if isinstance(reply, p.Failure):
        span.set_status(Status(StatusCode.ERROR, reply.error[:256]))
        span.set_attribute("sluice.job.outcome", "failed")
    else:
        outcome = {p.Result: "succeeded", p.Spawn: "spawned", p.RateLimited: "rate_limited"}.get(type(reply), "canceled")
        span.set_attribute("sluice.job.outcome", outcome)


def model_span_callbacks() -> list[Any]:
    """LangChain callbacks that make a span for each model call, under the span current now (the
    job's); none when spans are off. Pass them with a chain's other callbacks."""
    if _provider is None:
        return []
    return [_model_call_spans_class()(otel_context.get_current())]


@functools.cache
def _model_call_spans_class() -> type:
    # Made on first use: the worker runtime needs no LangChain.
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    class ModelCallSpans(BaseCallbackHandler):
        """A span per model call ("chat {model}", kind CLIENT, the OpenTelemetry GenAI
        attributes), from its start to its end or error, under the context it was made in."""

        def __init__(self, parent: otel_context.Context) -> None:
            super().__init__()
            self._parent = parent
            self._spans: dict[UUID, trace.Span] = {}
            self._lock = threading.Lock()

        def _start(self, run_id: UUID, kwargs: dict[str, Any]) -> None:
            metadata = kwargs.get("metadata") or {}
            params = kwargs.get("invocation_params") or {}
            model = str(metadata.get("ls_model_name") or params.get("model") or params.get("model_name") or "model")
            attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
            if metadata.get("ls_provider"):
                attributes["gen_ai.system"] = str(metadata["ls_provider"])
            if isinstance(params.get("max_tokens"), int):
                attributes["gen_ai.request.max_tokens"] = params["max_tokens"]
            span = _tracer().start_span(f"chat {model}", context=self._parent, kind=SpanKind.CLIENT,
                                        attributes=attributes)
            with self._lock:
                self._spans[run_id] = span

        def _pop(self, run_id: UUID) -> trace.Span | None:
            with self._lock:
                return self._spans.pop(run_id, None)

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                                **kwargs: Any) -> None:
            self._start(run_id, kwargs)

        def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start(run_id, kwargs)

        def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
            span = self._pop(run_id)
            if span is None:
                return
            prompt = completion = 0
            for generations in response.generations:
                for generation in generations:
                    message = generation.message if isinstance(generation, ChatGeneration) else None
                    if isinstance(message, AIMessage):
                        usage = message.usage_metadata or {}
                        prompt += int(usage.get("input_tokens") or 0)
                        completion += int(usage.get("output_tokens") or 0)
                        name = (message.response_metadata or {}).get("model_name")
                        if isinstance(name, str) and name:
                            span.set_attribute("gen_ai.response.model", name)
            span.set_attribute("gen_ai.usage.input_tokens", prompt)
            span.set_attribute("gen_ai.usage.output_tokens", completion)
            span.end()

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            span = self._pop(run_id)
            if span is None:
                return
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:256]))
            span.end()

    return ModelCallSpans
