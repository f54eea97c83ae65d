"""A small OpenTelemetry collector for the tests: an HTTP server on a free loopback port that
takes OTLP/HTTP trace exports (POST /v1/traces) in both encodings, protobuf (what the Python
SDK's exporter sends) and JSON (what the api and the broker send), decodes each with the OTLP
definitions (opentelemetry-proto) and keeps the spans. A JSON body that the OTLP JSON rules do
not allow (base64 ids, unknown fields) is answered 400 and kept out, as a collector would."""
from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
import time
from dataclasses import dataclass, field

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)


@dataclass
class ReceivedSpan:
    service: str
    trace_id: str  # hex
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict = field(default_factory=dict)
    status_code: int = 0


def _hex_ids_to_base64(doc: object) -> object:
    """OTLP's JSON writes ids as hex, where protobuf's JSON mapping has base64: convert them so
    json_format can check the rest of the document strictly."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(doc, list):
        return [_hex_ids_to_base64(item) for item in doc]
    return doc


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Collector:
    """The spans received so far, and the requests that were refused."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.refused: list[str] = []
        self.encodings: set[str] = set()
        self._lock = threading.Lock()

    def take(self, content_type: str, body: bytes) -> bool:
        request = ExportTraceServiceRequest()
        try:
            if content_type.startswith("application/x-protobuf"):
                request.ParseFromString(body)
                encoding = "protobuf"
            elif content_type.startswith("application/json"):
                json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request)
                encoding = "json"
            else:
                raise ValueError(f"content type {content_type!r}")
        except Exception as exc:  # a refused export: the test that sent it fails on self.refused
            with self._lock:
                self.refused.append(f"{type(exc).__name__}: {exc}")
            return False
        spans = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(ReceivedSpan(
                        service=attributes.get("service.name", ""), trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(), name=s.name,
                        kind=s.kind, start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in s.attributes}, status_code=s.status.code))
        with self._lock:
            self.spans.extend(spans)
            self.encodings.add(encoding)
        return True

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, predicate, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Waits until the spans of `trace_id` satisfy `predicate`; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            if predicate(spans):
                return spans
            assert time.monotonic() < deadline, f"trace {trace_id} never complete: {spans}; refused {self.refused}"
            time.sleep(0.1)


class _Handler(http.server.BaseHTTPRequestHandler):
    collector: Collector

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type", "")
        if self.path != "/v1/traces" or not self.collector.take(content_type, body):
            self.send_response(404 if self.path != "/v1/traces" else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = ExportTraceServiceResponse()
        payload = (answer.SerializeToString() if content_type.startswith("application/x-protobuf")
                   else json_format.MessageToJson(answer).encode())
        self.send_response(200)
        self.send_header("Content-Type", content_type.split(";")[0])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):
        """Logs nothing: the tests look at what was received."""


@contextlib.contextmanager
def otlp_receiver():
    """Runs a Collector on a free port of 127.0.0.1; yields (collector, its base URL)."""
    collector = Collector()
    handler = type("Handler", (_Handler,), {"collector": collector})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
