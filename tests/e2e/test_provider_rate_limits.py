"""A provider's 429 costs no attempt (README.md, "Provider rate limits"): the `openai` provider,
against a local OpenAI-compatible server that answers the first call 429 with Retry-After, raises
RateLimitedError; the worker says RATE_LIMITED; the broker puts the job back without spending an
attempt (its `rate_limited` count says why, its retrying event says code rate_limited) and
starts no job of that model, of any tenant, until the Retry-After has passed; then the job
succeeds with the usage the provider reported."""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from sluice import protocol

from fake_openai import ANSWER, PROMPT_TOKENS, FakeOpenAI
from pipeline import running_pipeline

MODEL = "fake-gpt"
RETRY_AFTER_S = 3


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    with FakeOpenAI(refusals=1, retry_after_s=RETRY_AFTER_S) as provider:
        with running_pipeline(tmp_path_factory.mktemp("rate-limits"), lambda: request.session.testsfailed) as p:
            p.start_worker("python", concurrency=2, SLUICE_MODEL_PROVIDER="openai", SLUICE_OPENAI_BASE_URL=provider.url,
                           SLUICE_OPENAI_MODEL=MODEL, SLUICE_OPENAI_API_KEY="sk-test")
            p.wait_ready("chat")
            yield p, provider


def job(p, job_id: str) -> dict:
    return p.http.get(f"/v1/jobs/{job_id}").json()


def test_a_429_requeues_the_job_without_an_attempt_and_pauses_the_model(site):
    p, provider = site
    first = p.submit("chat", {"prompt": "Say hello"}, max_attempts=1)["id"]
    refused_at = provider.first_call_at()
    paused = None
    while paused is None and time.time() < refused_at + RETRY_AFTER_S - 1:
        queues = p.http.get("/v1/queues").json()
        paused = next((m for m in queues["paused_models"] if m["model"] == MODEL), None)
        time.sleep(0.05)
    assert paused is not None and 0 < paused["resumes_in_s"] <= RETRY_AFTER_S
    # Submitted during the pause (the broker reports it): another job of the model waits it out
    # too, although the worker has a free slot.
    second = p.submit("chat", {"prompt": "Say hello again"})["id"]

    for job_id in (first, second):
        assert p.wait_result(job_id, timeout=60)["result"]["text"] == "".join(ANSWER)
    # No call reached the provider before the Retry-After was over.
    later = [at for at, _ in provider.calls[1:]]
    assert len(later) == 2 and min(later) >= refused_at + RETRY_AFTER_S - 0.05, provider.calls
    assert [status for _, status in provider.calls] == [429, 200, 200]

    done = job(p, first)
    assert done["status"] == "succeeded"
    # max_attempts 1, yet it ran twice: the 429 spent no attempt.
    assert done["rate_limited"] == 1
    assert done["attempts"] - done["rate_limited"] - done["redeliveries"] == 1
    assert [a["outcome"] for a in done["history"]] == ["rate_limited", "succeeded"]
    assert "rate limited by the model provider" in done["history"][0]["error"]
    retrying = [e for e in p.events(first) if e["event"] == "retrying"]
    assert len(retrying) == 1 and retrying[0]["data"]["code"] == "rate_limited"
    assert job(p, second)["rate_limited"] == 0


def test_the_usage_the_provider_streams_is_the_result_usage(site):
    p, _ = site
    result = p.wait_result(p.submit("chat", {"prompt": "Hi"})["id"], timeout=60)["result"]
    assert result["usage"] == {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(ANSWER)}
    assert result["model"] == MODEL


def test_a_workers_hostile_rate_limited_is_dropped_and_pauses_nothing(site):
    p, _ = site
    context = zmq.Context()
    try:
        rogue = p.own_worker(context, "rogue", ["chat"])
        rogue.send_multipart(protocol.encode(protocol.Ready("rogue", "python", ["chat"], 1, [""], [MODEL], [4], [8])))
        # A job it does not hold (any attempt), a malformed body, a body of the wrong types.
        rogue.send_multipart(protocol.encode(protocol.RateLimited("no-such-job", 1, 2**32 - 1, "x" * 10000)))
        rogue.send_multipart([b"SLUICE/1", b"\x1b", msgpack.packb(["job", "one"])])
        rogue.send_multipart([b"SLUICE/1", b"\x1b", b"\x94\xa1x"])
        deadline = time.monotonic() + 10
        while "dropped stale RATE_LIMITED" not in p.broker_log() or "RATE_LIMITED with a malformed body" not in p.broker_log():
            assert time.monotonic() < deadline, p.broker_log()[-2000:]
            time.sleep(0.05)
        rogue.close()
    finally:
        context.term()
    assert p.broker.poll() is None
    # The report is rewritten once a second and may still show the first test's pause, which
    # ends within RETRY_AFTER_S; the rogue's would last 10 minutes.
    deadline = time.monotonic() + RETRY_AFTER_S + 5
    while p.http.get("/v1/queues").json()["paused_models"]:
        assert time.monotonic() < deadline, p.http.get("/v1/queues").json()["paused_models"]
        time.sleep(0.2)
