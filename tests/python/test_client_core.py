"""The Python client's parts that need no api (sluice/client): it imports without the worker's
packages, every error code of common/errors.hpp has its exception, the SSE parser, the text of
the newest attempt across a retry, the retry policy and the paging. The client against a real
pipeline: tests/e2e/test_client.py."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.client import ERRORS, ApiError, JobNotFound, RateLimited, RetryPolicy, SluiceError, TextAssembler
from sluice.client.core import Event, Pager, SseParser, TextStream, job_path
from sluice.client.errors import error_from_body

ROOT = Path(__file__).resolve().parents[2]

# A meta-path finder that refuses the worker's packages, so an import of any of them fails.
BLOCKED_IMPORT = """
import importlib.abc, sys
BLOCKED = {"zmq", "msgpack", "langchain", "langchain_core", "langchain_text_splitters", "langchain_openai",
           "langchain_ollama", "llama_cpp", "pydantic"}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, Refuse())
"""


@pytest.mark.parametrize("code", [
    "from sluice.client import Client, AsyncClient, JobNotFound; Client('http://127.0.0.1:1').close(); print('ok')",
    "from sluice.console import main; import sluice; print('ok')",
])
def test_the_client_and_the_cli_import_without_the_worker_packages(code):
    done = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT + code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "python_workers")}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    # ...and the blocker works: the worker does not import.
    refused = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT + "import sluice.worker"], capture_output=True,
                             text=True, env={"PYTHONPATH": str(ROOT / "python_workers")}, timeout=60)
    assert refused.returncode != 0 and "blocked for this test" in refused.stderr


def test_every_error_code_has_its_exception():
    catalogue = dict(re.findall(r'Code \w+\{"(\w+)", (\d+)\}', (ROOT / "common" / "errors.hpp").read_text()))
    assert len(catalogue) > 30
    assert set(ERRORS) == set(catalogue)
    for code, status in catalogue.items():
        error = error_from_body(int(status), {"error": {"code": code, "message": "m"}}, retry_after=2.0)
        assert type(error) is ERRORS[code] and isinstance(error, ApiError) and isinstance(error, SluiceError)
        assert (error.status, error.code, error.message, error.retry_after) == (int(status), code, "m", 2.0)
        # The class name is the code in CamelCase.
        assert type(error).__name__.lower() == code.replace("_", "")


def test_unknown_codes_and_other_bodies_are_plain_api_errors():
    error = error_from_body(418, {"error": {"code": "teapot", "message": "short and stout"}})
    assert type(error) is ApiError and (error.status, error.code, error.message) == (418, "teapot", "short and stout")
    error = error_from_body(502, "<html>bad gateway</html>")
    assert type(error) is ApiError and error.code == "http_502" and "bad gateway" in error.message
    assert isinstance(error_from_body(404, {"error": {"code": "job_not_found", "message": ""}}), JobNotFound)
    assert issubclass(RateLimited, ApiError)


def feed_all(parser: SseParser, text: str) -> list[Event]:
    return [e for e in (parser.feed(line) for line in text.split("\n")) if e is not None]


def test_the_sse_parser():
    parser = SseParser()
    events = feed_all(parser, ": keep-alive\n\n"
                              "id: 1\nevent: queued\ndata: {\"seq\":1,\"event\":\"queued\"}\n\n"
                              "retry: 2500\nid: 2\nevent: chunk\ndata: {\"seq\":2,\n"
                              "data:\"event\":\"chunk\",\"data\":\"a\"}\n\n"
                              "id: 3\n\n"  # no data: no event
                              "data: {\"seq\":4,\"event\":\"succeeded\"}\n\n")
    assert [(e.id, e.event) for e in events] == [(1, "queued"), (2, "chunk"), (4, "succeeded")]
    assert events[1].data["data"] == "a"           # two data lines joined with a newline
    assert events[2].terminal and not events[0].terminal
    assert parser.retry_ms == 2500


def chunk(seq, attempt, text):
    return Event(seq, "chunk", {"event": "chunk", "attempt": attempt, "data": text})


def test_the_text_restarts_with_a_new_attempt():
    events = [Event(1, "started", {"attempt": 1}), chunk(2, 1, "Hel"), chunk(3, 1, "lo"),
              Event(4, "retrying", {"attempt": 1, "error": "boom"}),
              chunk(5, 1, "late"),                   # a superseded attempt's chunk: dropped
              Event(6, "started", {"attempt": 2}), chunk(7, 2, "Hello"), chunk(8, 2, " world"),
              Event(9, "succeeded", {"attempt": 2, "result": {"text": "Hello world"}})]
    stream = TextStream(events)
    chunks = list(stream)
    assert chunks == ["Hel", "lo", "Hello", " world"]
    assert [c.restart for c in chunks] == [False, False, True, False]
    assert [c.attempt for c in chunks] == [1, 1, 2, 2]
    assert stream.text == "Hello world"
    assert stream.final.data["result"] == {"text": "Hello world"}


def test_the_text_at_the_retrying_event_is_empty():
    text = TextAssembler()
    text.feed(chunk(1, 1, "Hel"))
    text.feed(Event(2, "retrying", {"attempt": 1}))
    assert text.text == ""
    # An attempt that streamed nothing is no restart.
    text = TextAssembler()
    text.feed(Event(1, "retrying", {"attempt": 1}))
    assert not text.feed(chunk(2, 2, "x")).restart


def test_the_retry_policy_backs_off_honours_retry_after_and_gives_up():
    policy = RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=3.0)
    assert 0.75 <= policy.delay(0) <= 1.25
    assert 1.5 <= policy.delay(1) <= 2.5
    assert 2.25 <= policy.delay(2) <= 3.75   # capped at 3 s, then jittered
    assert policy.delay(0, retry_after=7) == 7
    assert policy.delay(3) is None
    assert RetryPolicy(max_retries=0).delay(0) is None


def test_the_pager_follows_cursors_up_to_the_limit():
    pager = Pager("/v1/jobs", {"status": "failed", "type": None}, 5, 3, "next_cursor", "cursor")
    first = pager.next_request()
    assert first.params == {"status": "failed", "limit": 3}
    job = {"id": "x", "type": "echo", "status": "failed"}
    assert len(pager.take({"jobs": [job] * 2, "next_cursor": "c1"})) == 2   # a short page, more to come
    second = pager.next_request()
    assert second.params == {"status": "failed", "limit": 3, "cursor": "c1"}
    assert len(pager.take({"jobs": [job] * 3, "next_cursor": "c2"})) == 3
    assert pager.next_request() is None                                      # 5 taken
    pager = Pager("/v1/dead", {}, None, 100, "next_offset", "offset")
    pager.next_request()
    pager.take({"jobs": [job], "total": 1})
    assert pager.next_request() is None


def test_job_ids_are_escaped_in_paths():
    assert job_path("5d0c") == "/v1/jobs/5d0c"
    assert job_path("../admin/keys?x") == "/v1/jobs/..%2Fadmin%2Fkeys%3Fx"
