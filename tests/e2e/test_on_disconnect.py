"""options.on_disconnect "cancel": a job nobody has followed (SSE or WebSocket) for its grace
period is canceled, running or queued, and its worker slot freed; while anyone follows it, it
runs on. Jobs without the option are never touched. Bad option values are refused and store
nothing."""
import json
import socket
import time

import pytest

from pipeline import running_pipeline

GRACE_S = 2
# The api renews a followed job's deadline once a second and the broker looks once a second:
# a job is canceled between GRACE_S and GRACE_S + 2 s after its last follower left. Generous.
CANCELED_WITHIN = GRACE_S + 8


@pytest.fixture(scope="module")
def p(tmp_path_factory, request):
    """A native worker (sleep) with room for two jobs, and `parked`, a type no worker takes."""
    with running_pipeline(tmp_path_factory.mktemp("disconnect"), lambda: request.session.testsfailed,
                          SLUICE_KNOWN_TYPES="parked") as p:
        p.start_worker("native", concurrency=2)
        p.wait_ready("sleep")
        yield p


def submit(p, job_type: str, input=None, **options) -> str:
    return p.submit(job_type, input, **options)["id"]


def status(p, job_id: str) -> str:
    return p.http.get(f"/v1/jobs/{job_id}").json()["status"]


def wait_status(p, job_id: str, wanted: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (now := status(p, job_id)) != wanted:
        assert time.monotonic() < deadline, f"job {job_id} is {now}, not {wanted}"
        time.sleep(0.1)


def open_sse(p, job_id: str) -> socket.socket:
    """Follows the job's events on a raw connection (closing it is the client leaving)."""
    sock = socket.create_connection(p.api_address(), timeout=10)
    sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: sluice\r\n\r\n".encode())
    assert b"200" in sock.recv(4096).split(b"\r\n", 1)[0]
    return sock


def followed_score(p, job_id: str):
    with p.redis_client() as redis:
        return redis.call("ZSCORE", "sluice:followed", job_id)


def test_a_running_job_lives_while_followed_and_is_canceled_after_its_follower_leaves(p):
    job = submit(p, "sleep", {"ms": 60000}, on_disconnect="cancel", disconnect_grace_s=GRACE_S)
    stream = open_sse(p, job)
    wait_status(p, job, "running", 10)
    time.sleep(GRACE_S + 3)  # well past the grace: the stream keeps it alive
    assert status(p, job) == "running"
    stream.close()
    wait_status(p, job, "canceled", CANCELED_WITHIN)
    last = p.events(job)[-1]
    assert last["event"] == "canceled" and "on_disconnect" in last["data"]["message"]
    assert followed_score(p, job) is None
    # Its slot is free again: two more sleeps run at once on the worker of concurrency 2.
    ids = [submit(p, "sleep", {"ms": 200}) for _ in range(2)]
    for job_id in ids:
        assert p.wait_result(job_id)["status"] == "succeeded"


def test_a_job_nobody_ever_follows_is_canceled_after_its_grace_from_submit(p):
    job = submit(p, "parked", on_disconnect="cancel", disconnect_grace_s=GRACE_S)
    assert status(p, job) == "queued"
    wait_status(p, job, "canceled", CANCELED_WITHIN)
    assert [e["event"] for e in p.events(job)] == ["queued", "canceled"]


def test_a_websocket_subscription_keeps_the_job_and_unsubscribing_lets_it_go(p):
    job = submit(p, "parked", on_disconnect="cancel", disconnect_grace_s=GRACE_S)
    with p.websocket() as conn:
        conn.send(json.dumps({"op": "subscribe", "job_id": job}))
        time.sleep(GRACE_S + 3)
        assert status(p, job) == "queued"
        conn.send(json.dumps({"op": "unsubscribe", "job_id": job}))
        wait_status(p, job, "canceled", CANCELED_WITHIN)


def test_one_follower_leaving_does_not_cancel_a_job_another_still_follows(p):
    job = submit(p, "parked", on_disconnect="cancel", disconnect_grace_s=GRACE_S)
    first, second = open_sse(p, job), open_sse(p, job)
    first.close()
    time.sleep(GRACE_S + 3)
    assert status(p, job) == "queued"
    second.close()
    wait_status(p, job, "canceled", CANCELED_WITHIN)


def test_jobs_without_the_option_run_to_the_end_with_nobody_following(p):
    job = submit(p, "sleep", {"ms": (GRACE_S + 3) * 1000})
    assert followed_score(p, job) is None
    assert p.wait_result(job)["status"] == "succeeded"


def test_a_job_that_ends_leaves_the_followed_set(p):
    job = submit(p, "sleep", {"ms": 10}, on_disconnect="cancel", disconnect_grace_s=60)
    assert followed_score(p, job) is not None
    assert p.wait_result(job)["status"] == "succeeded"
    assert followed_score(p, job) is None


@pytest.mark.parametrize("options", [
    {"on_disconnect": "bogus"},
    {"on_disconnect": 1},
    {"on_disconnect": None},
    {"on_disconnect": ["cancel"]},
    {"on_disconnect": "cancel", "disconnect_grace_s": 1},
    {"on_disconnect": "cancel", "disconnect_grace_s": 3601},
    {"on_disconnect": "cancel", "disconnect_grace_s": "10"},
    {"on_disconnect": "cancel", "disconnect_grace_s": 2.5},
    {"on_disconnect": "cancel", "disconnect_grace_s": 2**64},
    {"disconnect_grace_s": 10},
    {"on_disconnect": "keep", "disconnect_grace_s": 10},
    {"on_disconnect": "c" * 100_000},
])
def test_bad_on_disconnect_options_are_refused_and_store_nothing(p, options):
    with p.redis_client() as redis:
        before = redis.call("ZCARD", "sluice:jobs:default")
        response = p.http.post("/v1/jobs", json={"type": "sleep", "input": {"ms": 1}, "options": options})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert redis.call("ZCARD", "sluice:jobs:default") == before


def test_keep_is_the_default_and_may_be_said(p):
    job = submit(p, "sleep", {"ms": 10}, on_disconnect="keep")
    assert followed_score(p, job) is None
    assert p.wait_result(job)["status"] == "succeeded"
