"""Scheduled and expiring jobs with real processes: options.delay_s and options.run_at (RFC 3339,
any offset) keep a job `scheduled` until due, then it runs; the schedule lives in Redis, so a
broker killed with SIGKILL and started again still runs it (and fails one whose deadline passed
meanwhile); a scheduled job can be canceled and
listed; options.expire_after_s fails a job not started in time (`expired`) without any worker
seeing it, whether no worker serves its type or the only one is busy; hostile values are 422 with
stable codes and store nothing."""
import datetime
import signal
import time
import uuid

import pytest
import zmq
from sluice import protocol

from pipeline import next_job


def now_ms() -> int:
    return int(time.time() * 1000)


def job(p, job_id: str) -> dict:
    response = p.http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(p, job_id: str, *statuses: str, timeout: float = 30.0, worker: zmq.Socket | None = None) -> dict:
    """The job once its status is one of `statuses`. A worker of the test's own heartbeats
    meanwhile (the broker forgets a worker silent for 3 s), and must receive no JOB."""
    deadline = time.monotonic() + timeout
    while True:
        body = job(p, job_id)
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"job {job_id} stayed {body['status']}"
        if worker is None:
            time.sleep(0.05)
            continue
        worker.send_multipart(protocol.encode(protocol.Heartbeat()))
        while worker.poll(100):
            assert not isinstance(protocol.decode(worker.recv_multipart()), protocol.Job)


def hash_ms(p, job_id: str, field: str) -> int:
    with p.redis_client() as redis:
        return int(redis.call("HGET", f"sluice:job:{job_id}", field) or 0)


def event_names(p, job_id: str) -> list[str]:
    return [event["event"] for event in p.events(job_id)]


def test_a_delayed_job_stays_scheduled_then_runs(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("python")
    p.wait_ready("echo")
    before = now_ms()
    submitted = p.submit("echo", {"text": "later"}, delay_s=2)
    assert submitted["status"] == "scheduled"
    body = job(p, submitted["id"])
    assert body["status"] == "scheduled" and body["started_at"] is None
    run_at = datetime.datetime.fromisoformat(body["run_at"].replace("Z", "+00:00"))
    assert before + 2000 <= run_at.timestamp() * 1000 <= now_ms() + 2000
    assert "queue_position" not in body
    listed = p.http.get("/v1/jobs", params={"status": "scheduled"}).json()["jobs"]
    assert [j["id"] for j in listed] == [submitted["id"]]
    with p.redis_client() as redis:
        due = int(redis.call("ZSCORE", "sluice:scheduled", submitted["id"]))
    assert due == hash_ms(p, submitted["id"], "run_at_ms")

    assert p.wait_result(submitted["id"])["status"] == "succeeded"
    assert hash_ms(p, submitted["id"], "started_ms") >= hash_ms(p, submitted["id"], "run_at_ms")
    assert event_names(p, submitted["id"]) == ["scheduled", "queued", "started", "succeeded"]
    with p.redis_client() as redis:
        assert redis.call("ZCARD", "sluice:scheduled") == 0


@pytest.mark.parametrize("offset", ["+05:30", "-08:00", "Z"])
def test_run_at_takes_any_offset(fresh_pipeline, offset):
    p = fresh_pipeline.start()
    p.start_worker("python")
    p.wait_ready("echo")
    due = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=3)
    zone = datetime.timezone.utc if offset == "Z" else datetime.datetime.strptime(offset, "%z").tzinfo
    text = due.astimezone(zone).isoformat()
    text = text.replace("+00:00", "Z") if offset == "Z" else text
    assert text.endswith(offset)
    submitted = p.submit("echo", {"n": 1}, run_at=text)
    assert submitted["status"] == "scheduled"
    assert hash_ms(p, submitted["id"], "run_at_ms") == int(due.timestamp() * 1000)
    assert job(p, submitted["id"])["run_at"] == due.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    p.wait_result(submitted["id"])
    assert hash_ms(p, submitted["id"], "started_ms") >= int(due.timestamp() * 1000)


def test_run_at_in_the_past_runs_now(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("python")
    p.wait_ready("echo")
    submitted = p.submit("echo", {"n": 1}, run_at="2001-01-01T00:00:00Z")
    assert submitted["status"] == "queued"
    assert p.wait_result(submitted["id"])["status"] == "succeeded"


def test_a_scheduled_job_survives_a_broker_kill(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    soon = p.submit("echo", {"n": 1}, delay_s=1)["id"]
    later = p.submit("echo", {"n": 2}, delay_s=5)["id"]
    missed = p.submit("echo", {"n": 3}, delay_s=1, expire_after_s=1)["id"]
    p.stop_process(p.broker, signal.SIGKILL)
    time.sleep(2.5)  # `soon` falls due while no broker runs, and `missed` past its deadline
    p.start_broker(same_endpoints=True, SLUICE_KNOWN_TYPES="echo")
    assert job(p, later)["status"] == "scheduled"
    p.start_worker("python")
    for job_id in (soon, later):
        assert p.wait_result(job_id)["status"] == "succeeded"
        assert hash_ms(p, job_id, "started_ms") >= hash_ms(p, job_id, "run_at_ms")
    assert "3 scheduled job(s) loaded from Redis" in p.broker_log()
    expired = job(p, missed)
    assert expired["status"] == "failed" and expired["error_code"] == "expired" and expired["attempts"] == 0


def test_cancel_while_scheduled(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    job_id = p.submit("echo", {"n": 1}, delay_s=60)["id"]
    response = p.http.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert job(p, job_id)["status"] == "canceled"
    with p.redis_client() as redis:
        assert redis.call("ZSCORE", "sluice:scheduled", job_id) is None
    assert event_names(p, job_id) == ["scheduled", "canceled"]
    assert p.http.delete(f"/v1/jobs/{job_id}").json()["error"]["code"] == "job_finished"


def test_scheduled_jobs_count_against_the_tenants_queue_limit(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo", SLUICE_TENANT_MAX_QUEUED="3")
    for _ in range(2):
        p.submit("echo", {"n": 1}, delay_s=3600)
    p.submit("echo", {"n": 1})
    refused = p.http.post("/v1/jobs", json={"type": "echo", "options": {"delay_s": 3600}})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "tenant_queue_full"


def test_a_job_nobody_serves_expires_on_time_without_a_dead_letter(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="nobody")
    submitted = p.submit("nobody", {"n": 1}, expire_after_s=1)
    scheduled = p.submit("nobody", {"n": 2}, delay_s=1, expire_after_s=1)
    for job_id in (submitted["id"], scheduled["id"]):
        body = wait_status(p, job_id, "failed", timeout=15)
        assert body["error_code"] == "expired" and body["attempts"] == 0 and body["history"] == []
        assert hash_ms(p, job_id, "finished_ms") >= hash_ms(p, job_id, "expire_at_ms")
        events = p.events(job_id)
        assert events[-1]["event"] == "failed" and events[-1]["data"]["code"] == "expired"
    assert event_names(p, scheduled["id"]) == ["scheduled", "queued", "failed"]
    with p.redis_client() as redis:
        assert redis.call("ZCARD", "sluice:dead") == 0
        assert redis.call("ZCARD", "sluice:deadlines") == 0
        assert redis.call("ZCARD", "sluice:queue:nobody") == 0


def test_no_worker_sees_an_expired_job(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    context = zmq.Context()
    try:
        worker = p.own_worker(context, "busy", ["echo"])  # one slot
        p.wait_workers("busy")
        first = p.submit("echo", {"n": 1})["id"]
        taken = next_job(worker)
        assert taken.job_id == first
        late = p.submit("echo", {"n": 2}, expire_after_s=1)["id"]
        assert wait_status(p, late, "failed", timeout=15, worker=worker)["error_code"] == "expired"
        # The slot frees only now: the expired job is not handed out, and a fresh one is.
        worker.send_multipart(protocol.encode(protocol.Result(first, taken.attempt, b"\xc0")))
        fresh = p.submit("echo", {"n": 3}, expire_after_s=60)["id"]
        assert next_job(worker).job_id == fresh
        assert wait_status(p, first, "succeeded")["status"] == "succeeded"
    finally:
        context.destroy(linger=0)


def test_a_retry_waiting_past_its_deadline_expires(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo", SLUICE_RETRY_BACKOFF_MS="60000")
    context = zmq.Context()
    try:
        worker = p.own_worker(context, "flaky", ["echo"])
        p.wait_workers("flaky")
        job_id = p.submit("echo", {"n": 1}, expire_after_s=2, max_attempts=3)["id"]
        taken = next_job(worker)
        worker.send_multipart(protocol.encode(protocol.Failure(job_id, taken.attempt, "try again", True)))
        body = wait_status(p, job_id, "failed", timeout=15, worker=worker)
        assert body["error_code"] == "expired" and body["attempts"] == 1
        assert [e["event"] for e in p.events(job_id)][-2:] == ["retrying", "failed"]
    finally:
        context.destroy(linger=0)


HOSTILE = [
    ({"delay_s": -1}, "invalid_schedule"),
    ({"delay_s": 10**12}, "invalid_schedule"),
    ({"delay_s": "10"}, "invalid_schedule"),
    ({"delay_s": "NaN"}, "invalid_schedule"),
    ({"delay_s": 1e308}, "invalid_schedule"),
    ({"delay_s": 5, "run_at": "2030-01-01T00:00:00Z"}, "invalid_schedule"),
    ({"run_at": "garbage"}, "invalid_schedule"),
    ({"run_at": "2026-02-30T00:00:00Z"}, "invalid_schedule"),
    ({"run_at": "9999-12-31T23:59:59+00:00"}, "invalid_schedule"),
    ({"run_at": "2030-01-01T00:00:00"}, "invalid_schedule"),
    ({"run_at": "1" * 200_000}, "invalid_schedule"),
    ({"run_at": 1893456000}, "invalid_schedule"),
    ({"expire_after_s": 0}, "invalid_expiry"),
    ({"expire_after_s": -1}, "invalid_expiry"),
    ({"expire_after_s": 10**12}, "invalid_expiry"),
    ({"expire_after_s": "60"}, "invalid_expiry"),
]


def test_hostile_schedules_are_422_and_store_nothing(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    for options, code in HOSTILE:
        response = p.http.post("/v1/jobs", json={"type": "echo", "options": options},
                               headers={"Idempotency-Key": str(uuid.uuid4())})
        assert response.status_code == 422, (options, response.text)
        assert response.json()["error"]["code"] == code, options
    raw = p.http.post("/v1/jobs", content=b'{"type": "echo", "options": {"delay_s": NaN}}',
                      headers={"Content-Type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    with p.redis_client() as redis:
        assert redis.call("SCAN", "0", "MATCH", "sluice:job:*", "COUNT", "1000")[1] == []
        assert redis.call("ZCARD", "sluice:scheduled") == 0
        assert redis.call("ZCARD", "sluice:deadlines") == 0
