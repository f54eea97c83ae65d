"""The broker checks every field it receives against the api's limits, whoever sent it: a rogue
api peer's SUBMITs outside them get 422 and store nothing; a frame past the socket's limit is
refused by libzmq before it is allocated; a worker's oversize RESULT fails its job with a clear
error, oversize progress is dropped, and an oversize error is cut before it is logged or stored."""
import time
import uuid

import msgpack
import pytest
import zmq
from sluice import protocol

from peers import RogueApi, submit_body
from pipeline import Pipeline, next_job, process_rss_mb

MAX_INPUT = 512 * 1024
HASH = "0" * 64


@pytest.fixture
def rogue(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    context = zmq.Context()
    try:
        yield p, context, RogueApi(context, p)
    finally:
        context.destroy(linger=0)


def stored(p: Pipeline, job_id: str) -> bool:
    with p.redis_client() as redis:
        return redis.call("EXISTS", f"sluice:job:{job_id}") == 1


def test_submits_outside_the_limits_are_refused_and_store_nothing(rogue):
    p, _, api = rogue
    cases = {
        "max_attempts must be 1..100": dict(attempts=4294967295),
        "max_attempts must be 1..100 ": dict(attempts=0),
        "timeout_s must be 1..86400": dict(timeout_s=4294967295),
        "job_id is not a UUID": dict(job_id="../../etc/passwd"),
        "job_id is not a UUID ": dict(job_id="1234"),
        "tenant is not a tenant name": dict(tenant="a:b"),
        "tenant is not a tenant name ": dict(tenant="t" * 65),
        "priority must be 0..9": dict(priority=-1),
        f"input too large ({MAX_INPUT + 1} bytes, limit {MAX_INPUT})": dict(input_=b"\xc0" * (MAX_INPUT + 1)),
        "invalid idempotency key or request hash": dict(key="has space", request_hash=HASH),
        "invalid idempotency key or request hash ": dict(key="k" * 256, request_hash=HASH),
        "invalid idempotency key or request hash  ": dict(key="key", request_hash="not hex"),
        "concurrency_key must be 1..128 visible ASCII characters": dict(concurrency_key="k" * 129, concurrency_limit=1),
        "concurrency_key must be 1..128 visible ASCII characters ": dict(concurrency_key="a b", concurrency_limit=1),
        "concurrency_limit must be 1..1000": dict(concurrency_key="k", concurrency_limit=0),
        "concurrency_limit must be 1..1000 ": dict(concurrency_key="k", concurrency_limit=100000),
        "concurrency_limit must be 0 without a concurrency_key": dict(concurrency_limit=1),
        "disconnect_grace_ms must be 0 or 2000..3600000": dict(disconnect_grace_ms=1999),
        "disconnect_grace_ms must be 0 or 2000..3600000 ": dict(disconnect_grace_ms=2**32 - 1),
        "run_at_ms is more than a year ahead": dict(run_at_ms=2**64 - 1),
        "run_at_ms is more than a year ahead ": dict(run_at_ms=int(time.time() * 1000) + 400 * 86400_000),
        "expire_at_ms must be after run_at_ms and at most a year after it": dict(expire_at_ms=2**64 - 1),
        "expire_at_ms must be after run_at_ms and at most a year after it ": dict(
            run_at_ms=int(time.time() * 1000) + 60_000, expire_at_ms=int(time.time() * 1000) + 30_000),

        "webhook_url is longer than 2048 bytes": dict(webhook_url="https://x.example/" + "a" * 2048,
                                                      webhook_events=["succeeded"]),
        "webhook_url must start with http:// or https://": dict(webhook_url="ftp://x.example/",
                                                                webhook_events=["succeeded"]),
        "webhook_url must not hold a user name or password": dict(webhook_url="http://u:p@x.example/",
                                                                  webhook_events=["succeeded"]),
        "webhook_events must name 1 to 6 events": dict(webhook_url="https://x.example/"),
        "webhook_events holds an unknown event": dict(webhook_url="https://x.example/", webhook_events=["chunk"]),
        "webhook_events names an event twice": dict(webhook_url="https://x.example/",
                                                    webhook_events=["failed", "failed"]),
        "webhook_events must be empty without a webhook_url": dict(webhook_events=["failed"]),
        "traceparent is not a W3C traceparent": dict(traceparent="00-" + "z" * 32 + "-" + "1" * 16 + "-01"),
        "traceparent is not a W3C traceparent ": dict(traceparent="t" * 100_000),
        "cache_ttl_s must be at most 604800": dict(cache_ttl_s=604801),
        "cache_ttl_s must be at most 604800 ": dict(cache_ttl_s=2**32 - 1),
        "dedupe joins a job due now: it does not take a run_at_ms": dict(
            dedupe=True, run_at_ms=int(time.time() * 1000) + 3_600_000),

    }
    for req_id, (message, fields) in enumerate(cases.items(), 1):
        job_id = fields.setdefault("job_id", str(uuid.uuid4()))
        reply = api.request(b"\x01", submit_body(req_id, **fields))
        assert reply is not None, message
        assert reply[:4] == [req_id, 422, "invalid_request", message.strip()], reply
        assert not stored(p, job_id), message
    # Not even a SUBMIT: a limit that is no integer does not decode, and is dropped unanswered.
    job_id = str(uuid.uuid4())
    assert api.request(b"\x01", submit_body(98, job_id, concurrency_key="k", concurrency_limit="1"), 1000) is None
    assert not stored(p, job_id)
    job_id = str(uuid.uuid4())
    assert api.request(b"\x01", submit_body(97, job_id, dedupe="yes"), 1000) is None
    assert not stored(p, job_id)
    # The same peer, within the limits, is served: the refusals were about the fields.
    job_id = str(uuid.uuid4())
    reply = api.request(b"\x01", submit_body(99, job_id, key="key", request_hash=HASH, concurrency_key="k" * 128,
                                              concurrency_limit=1000, disconnect_grace_ms=3600000))
    assert reply[:2] == [99, 202] and stored(p, job_id), reply


def test_a_frame_past_the_limit_is_dropped_unallocated(rogue):
    p, context, api = rogue
    # 5 MB of input: past the frontend's limit (input limit + headroom), the peer is cut off.
    job_id = str(uuid.uuid4())
    assert api.request(b"\x01", submit_body(1, job_id, input_=b"\xc0" * 5_000_000), timeout_ms=2000) is None
    assert not stored(p, job_id)

    before = process_rss_mb(p.broker.pid)
    for endpoint, component in ((p.frontend, "api"), (p.backend, "worker")):
        giant = p.allow(context.socket(zmq.DEALER), component)
        giant.setsockopt(zmq.LINGER, 0)
        giant.connect(endpoint)
        giant.send_multipart([b"SLUICE/1", b"\x01", bytes(300_000_000)])
        time.sleep(2)
        giant.close()
    assert process_rss_mb(p.broker.pid) - before < 20, (before, process_rss_mb(p.broker.pid))
    # And it still serves everyone else.
    fresh = RogueApi(context, p)
    assert fresh.request(b"\x03", msgpack.packb([5]))[:2] == [5, 200]


def test_an_oversize_result_fails_the_job_without_a_retry(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_MAX_RESULT_BYTES="1000")
    p.start_worker("native", name="native-1")
    p.wait_workers("native-1")
    job = p.submit("echo", {"text": "x" * 5000}, max_attempts=3)
    done = p.wait_result(job["id"])
    assert done["status"] == "failed", done
    body = p.http.get(f"/v1/jobs/{job['id']}").json()
    assert body["attempts"] == 1, body
    error = body["history"][0]["error"]
    assert error.startswith("result too large (") and error.endswith(" bytes, limit 1000)"), body
    assert body["history"][0]["outcome"] == "failed"
    # A result within the limit is stored as before.
    small = p.submit("echo", {"text": "short"})
    assert p.wait_result(small["id"])["result"] == {"text": "short"}


def test_oversize_progress_is_dropped_with_one_warning(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_MAX_EVENT_BYTES="5")
    p.start_worker("native", name="native-1")
    p.wait_workers("native-1")
    job = p.submit("sleep", {"ms": 300})
    assert p.wait_result(job["id"])["status"] == "succeeded"
    events = [e["event"] for e in p.events(job["id"])]
    assert "progress" not in events and events[-1] == "succeeded", events
    assert sum("dropped PROGRESS message for job" in line for line in p.broker_log().splitlines()) == 1


def test_an_oversize_error_is_cut_at_a_character_boundary_before_it_is_stored(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    job = p.submit("echo", {"n": 1}, max_attempts=1)["id"]
    context = zmq.Context()
    try:
        worker = p.own_worker(context, "verbose", ["echo"])
        msg = next_job(worker)
        assert msg.job_id == job
        # 1 MiB of two-byte characters after one of one byte: the limit falls inside one.
        error = "x" + "é" * (1 << 19)
        worker.send_multipart(protocol.encode(protocol.Failure(job, msg.attempt, error, False)))
        done = p.wait_result(job, timeout=10)
    finally:
        context.destroy(linger=0)

    cut = error[:1 + (protocol.MAX_ERROR_BYTES - 1) // 2]
    assert done["status"] == "failed" and done["error"] == cut
    assert [h["error"] for h in done["history"]] == [cut]
    assert [j["error"] for j in p.http.get("/v1/dead").json()["jobs"]] == [cut]
    # Logged cut too, and the broker serves on.
    assert len(p.broker_log()) < 64 * 1024
    assert p.broker.poll() is None and p.http.get("/readyz").status_code == 200
