"""Traces (README.md, Traces): a submit's W3C traceparent is kept with the job, carried to its
worker and returned in the job body; with SLUICE_OTLP_ENDPOINT the api, the broker and the
Python worker export their spans over OTLP/HTTP, so one job's trace shows the submit, its wait
in the queue, the worker's run and the model call, each under the one before. A real collector's
stand-in (otlp_receiver.py) decodes what they send with the OTLP definitions."""
import re
import socket
import subprocess
import threading
import time
import uuid

import pytest

from otlp_receiver import otlp_receiver
from pipeline import BUILD, running_pipeline

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$")
# The worker's batch span processor waits this long (ms) before it sends, not the SDK's 5 s.
WORKER_SPAN_DELAY_MS = "200"


@pytest.fixture(scope="module")
def traced(tmp_path_factory, request):
    with otlp_receiver() as (collector, endpoint), \
            running_pipeline(tmp_path_factory.mktemp("traces"), lambda: request.session.testsfailed,
                             env={"SLUICE_OTLP_ENDPOINT": endpoint}) as p:
        p.start_worker("python", concurrency=1, OTEL_BSP_SCHEDULE_DELAY=WORKER_SPAN_DELAY_MS)
        p.wait_ready("chat", timeout=60)
        yield p, collector


def job_trace(p, job_id: str) -> tuple[str, str, str]:
    """The trace id, span id and sampled flag of the job body's traceparent."""
    body = p.http.get(f"/v1/jobs/{job_id}").json()
    match = TRACEPARENT.match(body["traceparent"] or "")
    assert match, body
    return match.group(1), match.group(2), match.group(3)


def only(spans, service: str, name: str):
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, spans)
    return found[0]


def test_one_chat_job_is_one_trace_across_api_broker_worker_and_model(traced):
    p, collector = traced
    response = p.http.post("/v1/jobs", json={"type": "chat", "input": {"prompt": "Say hi.", "max_tokens": 8}},
                           headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    p.wait_result(job_id, timeout=120)
    trace_id, api_span_id, sampled = job_trace(p, job_id)
    assert (trace_id, sampled) == (CALLER_TRACE, "1")

    spans = collector.wait_for(trace_id, lambda spans: {s.service for s in spans} >= {
        "sluice-api", "sluice-broker", "sluice-worker"} and any(s.name.startswith("chat ") for s in spans))
    api = only(spans, "sluice-api", "POST /v1/jobs")
    broker = only(spans, "sluice-broker", "dispatch chat")
    worker = only(spans, "sluice-worker", "job chat")
    model = [s for s in spans if s.service == "sluice-worker" and s.name.startswith("chat ")]
    assert len(model) == 1, spans
    # Each under the one before, the submit under the caller's span.
    assert (api.span_id, api.parent_span_id, api.kind) == (api_span_id, CALLER_SPAN, 2)
    assert broker.parent_span_id == api.span_id
    assert (worker.parent_span_id, worker.kind) == (broker.span_id, 5)
    assert (model[0].parent_span_id, model[0].kind) == (worker.span_id, 3)
    assert api.attributes["sluice.job.id"] == broker.attributes["sluice.job.id"] == \
        worker.attributes["sluice.job.id"] == job_id
    assert api.attributes["http.response.status_code"] == 202
    assert broker.attributes["sluice.job.attempt"] == worker.attributes["sluice.job.attempt"] == 1
    assert model[0].attributes["gen_ai.usage.output_tokens"] > 0
    assert model[0].attributes["gen_ai.request.model"]
    # The broker's span is the job's wait in its queue: from the submit to the worker's start.
    # It starts at the broker's millisecond clock reading, up to 1 ms before the api's exact one.
    assert api.start_ns - 1_000_000 <= broker.start_ns <= broker.end_ns <= worker.end_ns
    assert worker.start_ns <= model[0].start_ns <= model[0].end_ns <= worker.end_ns
    assert collector.encodings == {"json", "protobuf"}
    assert collector.refused == []


def test_without_a_traceparent_or_with_a_malformed_one_the_job_starts_its_own_trace(traced):
    p, collector = traced
    cases = [{}, {"traceparent": "garbage"}, {"traceparent": f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01"},
             {"traceparent": f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01"}, {"traceparent": "x" * 6000}]
    ids = []
    for headers in cases:
        response = p.http.post("/v1/jobs", json={"type": "echo", "input": 1}, headers=headers)
        assert response.status_code == 202, (headers, response.text)
        ids.append(response.json()["id"])
    # Two traceparent headers: ambiguous, so neither is followed.
    raw = socket.create_connection(p.api_address(), timeout=10)
    body = b'{"type": "echo", "input": 2}'
    raw.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"traceparent: 00-" + CALLER_TRACE.encode() + b"-" + CALLER_SPAN.encode() + b"-01\r\n"
                b"traceparent: 00-" + CALLER_TRACE.encode() + b"-" + CALLER_SPAN.encode() + b"-01\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    answer = b""
    while chunk := raw.recv(65536):
        answer += chunk
    raw.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer
    ids.append(re.search(rb'"id":"([0-9a-f-]{36})"', answer).group(1).decode())
    traces = set()
    for job_id in ids:
        p.wait_result(job_id)
        trace_id, span_id, sampled = job_trace(p, job_id)
        assert trace_id != CALLER_TRACE and sampled == "1"
        traces.add(trace_id)
        api = collector.wait_for(trace_id, lambda spans: any(s.service == "sluice-api" for s in spans))
        assert only(api, "sluice-api", "POST /v1/jobs").parent_span_id == ""  # a root
    assert len(traces) == len(ids)


def test_an_unsampled_trace_is_carried_but_makes_no_spans(traced):
    p, collector = traced
    unsampled = uuid.uuid4().hex
    response = p.http.post("/v1/jobs", json={"type": "echo", "input": 3},
                           headers={"traceparent": f"00-{unsampled}-{CALLER_SPAN}-00"})
    job_id = response.json()["id"]
    p.wait_result(job_id)
    assert job_trace(p, job_id)[0::2] == (unsampled, "0")
    # A sampled job after it: once its spans are in from all three, the unsampled job's would be.
    later = p.http.post("/v1/jobs", json={"type": "echo", "input": 4}).json()["id"]
    p.wait_result(later)
    collector.wait_for(job_trace(p, later)[0], lambda spans: {s.service for s in spans} == {
        "sluice-api", "sluice-broker", "sluice-worker"})
    assert collector.trace(unsampled) == []


class BlackHole:
    """A collector that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def test_a_collector_that_never_answers_holds_up_no_job(tmp_path):
    hole = BlackHole()
    try:
        with running_pipeline(tmp_path / "p", env={"SLUICE_OTLP_ENDPOINT": hole.url}) as p:
            p.start_worker("native")
            p.wait_ready("echo")
            ids = [p.submit("echo", {"n": i})["id"] for i in range(50)]
            for job_id in ids:
                assert p.wait_result(job_id)["status"] == "succeeded"
            deadline = time.monotonic() + 20
            while "not sent to" not in p.logs():
                assert time.monotonic() < deadline, p.logs()
                time.sleep(0.2)
            assert "tracing: " in p.logs()
    finally:
        hole.close()


def test_an_unusable_endpoint_stops_the_api_and_broker_at_start():
    for binary in (BUILD / "api" / "sluice-api", BUILD / "broker" / "sluice-broker"):
        for endpoint in ("https://collector:4318", "collector:4318", "http://c:99999"):
            done = subprocess.run([str(binary)], env={"SLUICE_OTLP_ENDPOINT": endpoint, "SLUICE_API_PORT": "0",
                                                      "SLUICE_AUTH": "off"},
                                  capture_output=True, text=True, timeout=10)
            assert done.returncode == 2, (binary, endpoint, done.stderr)
            assert "SLUICE_OTLP_ENDPOINT" in done.stderr
