"""Jobs end to end through the real pipeline: submit over HTTP, run on a worker, result in
Redis, events streamed back (SSE), long-poll, replay with Last-Event-ID."""
import socket
import time

from pipeline import TERMINAL, iter_sse


def test_echo_returns_its_input_unchanged(pipeline):
    payload = {"text": "héllo", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    job = pipeline.submit("echo", payload)
    assert job["status"] == "queued"
    done = pipeline.wait_result(job["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == payload
    assert done["attempts"] == 1
    assert done["error"] is None
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]


def test_submit_answers_202_with_location_and_links(pipeline):
    response = pipeline.http.post("/v1/jobs", json={"type": "echo", "input": 1})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    assert body["links"]["events"].startswith(f"/v1/jobs/{body['id']}/events?token=")
    assert body["links"]["result"].startswith(f"/v1/jobs/{body['id']}/result?token=")
    status = pipeline.http.get(f"/v1/jobs/{body['id']}").json()
    assert status["type"] == "echo" and status["tenant"] == "default"


def test_job_ids_are_random_uuid4(pipeline):
    ids = {pipeline.submit("echo", i)["id"] for i in range(20)}
    assert len(ids) == 20
    for job_id in ids:
        assert len(job_id) == 36 and job_id[14] == "4" and job_id[19] in "89ab"


def test_sleep_streams_progress_then_succeeds(pipeline):
    job = pipeline.submit("sleep", {"ms": 300})
    events = pipeline.events(job["id"])
    names = [e["event"] for e in events]
    assert names[0] == "queued" and names[1] == "started" and names[-1] == "succeeded"
    assert names.count("progress") >= 3
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    fractions = [e["data"]["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)
    assert events[-1]["data"]["result"] == {"slept_ms": 300}
    for e in events:
        assert e["data"]["job_id"] == job["id"] and e["data"]["seq"] == e["id"] and e["data"]["time"]


def test_live_stream_sees_events_as_they_happen(pipeline):
    job = pipeline.submit("sleep", {"ms": 1500})
    started = time.monotonic()
    arrivals = [(time.monotonic() - started, event["event"])
                for event in iter_sse(pipeline.http, f"/v1/jobs/{job['id']}/events", {}, 30)]
    names = [name for _, name in arrivals]
    assert names[0] == "queued" and names[-1] == "succeeded"
    # Progress arrived while the job ran, not all at the end.
    first_progress = next(t for t, name in arrivals if name == "progress")
    assert first_progress < arrivals[-1][0] - 0.5


def test_last_event_id_replays_exactly_the_missed_events(pipeline):
    job = pipeline.submit("sleep", {"ms": 200})
    everything = pipeline.events(job["id"])
    assert everything[-1]["event"] == "succeeded"
    for last_seen in (0, 1, 2, len(everything) - 1):
        replay = pipeline.events(job["id"], last_event_id=last_seen)
        assert replay == everything[last_seen:]
    query = pipeline.http.get(f"/v1/jobs/{job['id']}/events", params={"last_event_id": 2})
    assert query.status_code == 200 and "id: 3\n" in query.text and "id: 2\n" not in query.text


def test_long_poll_waits_for_the_result(pipeline):
    job = pipeline.submit("sleep", {"ms": 1000})
    early = pipeline.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 0})
    assert early.status_code == 202 and early.json()["status"] in ("queued", "running")
    started = time.monotonic()
    done = pipeline.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 20})
    waited = time.monotonic() - started
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert waited < 10


def test_long_poll_gives_up_after_wait_seconds(pipeline):
    job = pipeline.submit("sleep", {"ms": 4000})
    started = time.monotonic()
    response = pipeline.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 1})
    assert response.status_code == 202
    assert 0.9 <= time.monotonic() - started < 3.5
    pipeline.http.delete(f"/v1/jobs/{job['id']}")


def test_failing_job_retries_then_fails_with_its_error(pipeline):
    job = pipeline.submit("fail", {"message": "boom"}, max_attempts=2)
    done = pipeline.wait_result(job["id"])
    assert done["status"] == "failed"
    assert "boom" in done["error"]
    assert done["attempts"] == 2
    names = [e["event"] for e in pipeline.events(job["id"])]
    assert names == ["queued", "started", "retrying", "started", "failed"]


def test_non_retryable_failure_is_not_retried(pipeline):
    job = pipeline.submit("fail", {"message": "bad input", "retryable": False}, max_attempts=5)
    done = pipeline.wait_result(job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1 and "bad input" in done["error"]


def test_langchain_chain_task(pipeline):
    job = pipeline.submit("text_stats", {"text": "The cat sat. The cat ran! A dog?"})
    done = pipeline.wait_result(job["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["words"] == 8 and result["sentences"] == 3
    assert result["top_words"][0] == ["the", 2] or result["top_words"][0][1] == 2


def test_priority_orders_queued_jobs(fresh_pipeline):
    p = fresh_pipeline.start()
    blocker = None
    # No worker yet: declare the type first, then let the queue build up behind a busy worker.
    worker = p.start_worker("native", concurrency=1)
    p.wait_ready("sleep")
    blocker = p.submit("sleep", {"ms": 800})
    time.sleep(0.2)
    low = [p.submit("echo", f"low{i}", priority=0)["id"] for i in range(3)]
    high = [p.submit("echo", f"high{i}", priority=9)["id"] for i in range(3)]
    for job_id in low + high + [blocker["id"]]:
        assert p.wait_result(job_id)["status"] == "succeeded"
    started = {}
    for job_id in low + high:
        events = p.events(job_id)
        started[job_id] = next(e["data"]["time"] for e in events if e["event"] == "started")
    assert max(started[j] for j in high) <= min(started[j] for j in low)
    assert p.stop_process(worker) == 0


def test_every_event_stream_ends_with_one_terminal_event(pipeline):
    jobs = [pipeline.submit("echo", i)["id"] for i in range(10)]
    for job_id in jobs:
        events = pipeline.events(job_id)
        assert [e["event"] in TERMINAL for e in events].count(True) == 1
        assert events[-1]["event"] == "succeeded"



def test_live_stream_gets_a_result_too_big_for_its_notice(pipeline):
    """A notice carries the event itself only up to 4 KiB; past that it carries the job id and
    the stream reads the event back at once. (This pipeline's streams re-read on their own only
    every 10 s, so a lost wake-up would miss the deadline below.)"""
    blockers = [pipeline.submit("sleep", {"ms": 1000})["id"] for _ in range(8)]  # every slot
    job_id = pipeline.submit("echo", {"text": "x" * 20000})["id"]
    with socket.create_connection(pipeline.api_address(), timeout=5) as sock:
        sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        deadline = time.monotonic() + 5
        while not received.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert b"event: queued" in received and b"event: started" in received
    assert b"event: succeeded" in received and received.count(b"x" * 20000) == 1
    for blocker in blockers:
        pipeline.wait_result(blocker)
