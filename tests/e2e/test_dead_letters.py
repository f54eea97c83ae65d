"""Dead letters, manual retry, attempt history and idempotent submits, through the real api,
broker and workers: a job out of attempts lands in GET /v1/dead with its error and history, whose
pages stay within their byte bound and say where the next one starts,
POST /v1/jobs/{id}/retry runs it again with a fresh attempt budget, a lost worker shows up as a redelivery,
and an Idempotency-Key makes a resubmit return the original job."""
import signal
import time
import uuid

import pytest

from pipeline import Pipeline, running_pipeline

DEAD_PAGE_MAX_BYTES = 1 << 20  # api/request.hpp

@pytest.fixture(scope="module")
def dead(tmp_path_factory, request):
    """Redis + broker (50 ms retry backoff) + api + one Python worker (echo, sleep, fail)."""
    with running_pipeline(tmp_path_factory.mktemp("dead"), lambda: request.session.testsfailed,
                          SLUICE_RETRY_BACKOFF_MS="50") as p:
        p.start_worker("python")
        p.wait_ready("fail")
        p.wait_ready("echo")
        yield p


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["code"]


def dead_page(p: Pipeline, **params) -> dict:
    response = p.http.get("/v1/dead", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) - {"next_offset"} == {"jobs", "total", "limit", "offset"}
    return page


def find_dead(p: Pipeline, job_id: str) -> dict | None:
    for job in dead_page(p, limit=1000)["jobs"]:
        if job["id"] == job_id:
            return job
    return None


def submit_failing(p: Pipeline, message: str, max_attempts: int) -> str:
    return p.submit("fail", {"message": message, "retryable": True}, max_attempts=max_attempts)["id"]


def check_failed_attempts(history: list[dict], message: str, attempts: list[int]) -> None:
    assert [h["attempt"] for h in history] == attempts, history
    for h in history:
        assert h["outcome"] == "failed", h
        assert message in h["error"], h
        assert h["worker"]
        assert h["started_at"] and h["finished_at"] and h["started_at"] <= h["finished_at"], h


def test_a_job_out_of_attempts_is_dead_with_its_error_and_history(dead):
    message = f"boom {uuid.uuid4()}"
    job_id = submit_failing(dead, message, max_attempts=2)
    final = dead.wait_result(job_id)
    assert final["status"] == "failed" and message in final["error"]
    assert final["attempts"] == 2 and final["redeliveries"] == 0
    check_failed_attempts(final["history"], message, [1, 2])

    listed = find_dead(dead, job_id)
    assert listed is not None, "a dead job is missing from GET /v1/dead"
    assert listed["status"] == "failed" and message in listed["error"]
    check_failed_attempts(listed["history"], message, [1, 2])
    assert listed == dead.http.get(f"/v1/jobs/{job_id}").json()


def test_retry_puts_a_dead_job_back_and_it_runs_again_from_attempt_one(dead):
    message = f"again {uuid.uuid4()}"
    job_id = submit_failing(dead, message, max_attempts=2)
    assert dead.wait_result(job_id)["status"] == "failed"
    assert find_dead(dead, job_id) is not None

    response = dead.http.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": job_id, "status": "queued"}

    # It gets a fresh budget of max_attempts and runs (and fails) twice more. Attempt numbers
    # keep counting (they fence late answers from older runs), so the history reads 1..4.
    deadline = time.monotonic() + 30
    while True:
        job = dead.wait_result(job_id)
        if len(job["history"]) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert job["status"] == "failed" and job["attempts"] == 4, job
    check_failed_attempts(job["history"], message, [1, 2, 3, 4])
    assert find_dead(dead, job_id) is not None
    # A job is retried only when dead: a second retry now is fine, a retry while queued is not.
    assert dead.http.post(f"/v1/jobs/{job_id}/retry").status_code == 200
    second = dead.http.post(f"/v1/jobs/{job_id}/retry")
    if second.status_code != 200:  # not dead again yet (it is queued or running)
        assert error_code(second, 409) == "job_not_dead"


def test_retry_of_a_job_that_is_not_dead_is_409_and_of_an_unknown_one_404(dead):
    done = dead.submit("echo", "fine")["id"]
    assert dead.wait_result(done)["status"] == "succeeded"
    assert error_code(dead.http.post(f"/v1/jobs/{done}/retry"), 409) == "job_not_dead"

    running = dead.submit("sleep", {"ms": 5000})["id"]
    assert error_code(dead.http.post(f"/v1/jobs/{running}/retry"), 409) == "job_not_dead"
    assert dead.http.delete(f"/v1/jobs/{running}").status_code == 200
    # Canceled is terminal but not dead: still not retryable.
    assert error_code(dead.http.post(f"/v1/jobs/{running}/retry"), 409) == "job_not_dead"

    assert error_code(dead.http.post(f"/v1/jobs/{uuid.uuid4()}/retry"), 404) == "job_not_found"
    assert error_code(dead.http.post("/v1/jobs/not-a-uuid/retry"), 404) == "job_not_found"
    wrong = dead.http.get(f"/v1/jobs/{done}/retry")
    assert error_code(wrong, 405) == "method_not_allowed" and wrong.headers["allow"] == "POST"


def test_the_dead_list_pages_newest_first(dead):
    ids = []
    for i in range(3):
        ids.append(submit_failing(dead, f"page {i}", max_attempts=1))
        assert dead.wait_result(ids[-1])["status"] == "failed"  # one at a time: a known order
    everything = dead_page(dead, limit=1000)
    assert everything["total"] >= 3 and everything["limit"] == 1000 and everything["offset"] == 0
    finished = [job["finished_at"] for job in everything["jobs"]]
    assert finished == sorted(finished, reverse=True)
    newest = [job["id"] for job in everything["jobs"][:3]]
    assert newest == ids[::-1]

    first = dead_page(dead, limit=2)
    assert [job["id"] for job in first["jobs"]] == newest[:2] and first["limit"] == 2
    assert first["next_offset"] == 2
    second = dead_page(dead, limit=2, offset=2)
    assert second["jobs"][0]["id"] == newest[2] and second["offset"] == 2
    past_the_end = dead_page(dead, offset=everything["total"])
    assert past_the_end["jobs"] == [] and "next_offset" not in past_the_end
    assert "next_offset" not in everything
    assert dead_page(dead)["limit"] == 100


def test_dead_pages_stay_within_their_byte_bound_and_next_offset_lists_each_job_once(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("python", concurrency=8)
    p.wait_ready("fail")
    # Each job keeps its error, cut by the worker to 4 KiB, twice (its own and its attempt's):
    # about 8.6 KB a job, so 250 of them (2 MiB) are well past one page's bound.
    ids = {p.submit("fail", {"message": "x" * 5000, "retryable": False}, max_attempts=1)["id"]
           for _ in range(250)}
    deadline = time.monotonic() + 60
    while dead_page(p, limit=1)["total"] < len(ids):
        assert time.monotonic() < deadline, "the jobs never all died"
        time.sleep(0.2)

    listed, offset, sizes = [], 0, []
    while True:
        response = p.http.get("/v1/dead", params={"limit": 1000, "offset": offset})
        assert response.status_code == 200, response.text
        sizes.append(len(response.content))
        page = response.json()
        listed += [job["id"] for job in page["jobs"]]
        if "next_offset" not in page:
            break
        assert page["next_offset"] == offset + len(page["jobs"])
        offset = page["next_offset"]
    assert len(sizes) >= 3 and max(sizes) <= DEAD_PAGE_MAX_BYTES, sizes
    assert sorted(listed) == sorted(ids)


def test_same_idempotency_key_and_body_gives_the_original_job(dead):
    key = f"order-{uuid.uuid4()}"
    first = dead.http.post("/v1/jobs", json={"type": "echo", "input": {"n": 1, "m": [2]}},
                           headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    job_id = first.json()["id"]
    # The same request spelled differently (key order, whitespace, default options) is the same.
    second = dead.http.post("/v1/jobs", content=b'{"input": {"m": [2], "n": 1}, "type": "echo", '
                                                 b'"options": {"priority": 0, "max_attempts": 3}}',
                            headers={"Idempotency-Key": key, "content-type": "application/json"})
    assert second.status_code == 202, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == job_id
    assert second.headers["location"] == f"/v1/jobs/{job_id}"
    assert set(second.json()) == set(first.json())
    # Still the original once it has run.
    assert dead.wait_result(job_id)["result"] == {"n": 1, "m": [2]}
    third = dead.http.post("/v1/jobs", json={"type": "echo", "input": {"n": 1, "m": [2]}},
                           headers={"Idempotency-Key": key})
    assert third.status_code == 202 and third.json()["id"] == job_id
    assert third.headers["idempotent-replayed"] == "true"
    assert third.json()["status"] == "succeeded"  # its state now, not the first answer's


def test_same_idempotency_key_with_a_different_body_is_409(dead):
    key = f"conflict-{uuid.uuid4()}"
    first = dead.http.post("/v1/jobs", json={"type": "echo", "input": 1}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    for body in ({"type": "echo", "input": 2},
                 {"type": "echo", "input": 1, "options": {"priority": 5}},
                 {"type": "fail", "input": 1}):
        response = dead.http.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        assert error_code(response, 409) == "idempotency_conflict", body


def test_different_idempotency_keys_make_different_jobs(dead):
    body = {"type": "echo", "input": "same body"}
    ids = set()
    for _ in range(3):
        response = dead.http.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"k-{uuid.uuid4()}"})
        assert response.status_code == 202 and "idempotent-replayed" not in response.headers
        ids.add(response.json()["id"])
    plain = {dead.submit("echo", "same body")["id"] for _ in range(2)}  # no key: always new
    assert len(ids) == 3 and len(plain) == 2 and not ids & plain


def test_a_job_whose_worker_dies_shows_a_redelivery_and_a_lost_attempt(fresh_pipeline):
    p = fresh_pipeline.start()
    victim = p.start_worker("native", concurrency=1, name="victim")
    p.wait_ready("sleep")
    job_id = p.submit("sleep", {"ms": 1500})["id"]
    deadline = time.monotonic() + 10
    while p.http.get(f"/v1/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    p.start_worker("native", concurrency=1, name="rescuer")
    job = p.wait_result(job_id, timeout=30)
    assert job["status"] == "succeeded", job
    assert job["redeliveries"] == 1 and job["attempts"] == 2, job
    assert [h["outcome"] for h in job["history"]] == ["lost", "succeeded"], job["history"]
    assert job["history"][0]["worker"] == "victim" and job["history"][0]["error"]
    assert job["history"][1]["worker"] == "rescuer" and job["history"][1]["error"] is None
