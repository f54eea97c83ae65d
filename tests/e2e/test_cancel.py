"""Cancel: a queued job never runs; a running job's handler is stopped and its slot freed."""
import time


def test_cancel_queued_and_running_jobs_on_a_native_worker(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("native", concurrency=1)
    p.wait_ready("sleep")
    running = p.submit("sleep", {"ms": 20000})
    queued = p.submit("sleep", {"ms": 20000})
    deadline = time.monotonic() + 10
    while p.http.get(f"/v1/jobs/{running['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    response = p.http.delete(f"/v1/jobs/{queued['id']}")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert [e["event"] for e in p.events(queued["id"])] == ["queued", "canceled"]

    response = p.http.delete(f"/v1/jobs/{running['id']}")
    assert response.status_code == 200
    names = [e["event"] for e in p.events(running["id"])]
    assert names[:2] == ["queued", "started"] and names[-1] == "canceled"
    assert p.http.get(f"/v1/jobs/{running['id']}").json()["status"] == "canceled"

    # The only slot is free again: a new job runs at once.
    started = time.monotonic()
    echo = p.submit("echo", "after cancel")
    assert p.wait_result(echo["id"])["result"] == "after cancel"
    assert time.monotonic() - started < 5

    again = p.http.delete(f"/v1/jobs/{running['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_cancel_running_python_job_stops_the_handler(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("python", concurrency=1)
    p.wait_ready("sleep")
    job = p.submit("sleep", {"ms": 30000})
    deadline = time.monotonic() + 10
    while p.http.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert p.http.delete(f"/v1/jobs/{job['id']}").status_code == 200
    follow = p.submit("echo", {"x": 1})
    started = time.monotonic()
    assert p.wait_result(follow["id"])["result"] == {"x": 1}
    assert time.monotonic() - started < 5
    # No event of the canceled attempt lands after the cancel.
    time.sleep(1.5)
    assert p.events(job["id"])[-1]["event"] == "canceled"


def test_cancel_unknown_job_is_404(pipeline):
    response = pipeline.http.delete("/v1/jobs/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"
