"""GET /v1/workers: the workers the broker knows, from its report in Redis (rewritten once a
second): name, runtime, types, concurrency, jobs running now, last heartbeat; a worker that
stops leaves it."""
import time


def workers(p) -> dict:
    response = p.http.get("/v1/workers")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(p, check, timeout=8.0) -> dict:
    deadline = time.monotonic() + timeout
    while not check(report := workers(p)):
        assert time.monotonic() < deadline, report
        time.sleep(0.2)
    return report


def test_the_report_shows_each_worker_and_what_it_runs(fresh_pipeline):
    p = fresh_pipeline.start()
    assert set(workers(p)) == {"workers", "total", "as_of"}
    native = p.start_worker("native", name="native-1", concurrency=3)
    p.start_worker("python", name="python-1", concurrency=2)
    report = wait_for(p, lambda r: r["total"] == 2)
    by_name = {w["name"]: w for w in report["workers"]}
    assert by_name["native-1"]["runtime"] == "cpp" and by_name["native-1"]["concurrency"] == 3
    assert "sleep" in by_name["native-1"]["types"] and "summarize" in by_name["python-1"]["types"]
    assert by_name["python-1"]["running"] == 0 and by_name["python-1"]["leaving"] is False
    assert set(by_name["python-1"]) == {"name", "runtime", "types", "concurrency", "running", "last_heartbeat",
                                        "leaving"}
    assert report["as_of"] >= by_name["python-1"]["last_heartbeat"]

    p.submit("sleep", {"ms": 3000})
    p.submit("sleep", {"ms": 3000})
    wait_for(p, lambda r: sum(w["running"] for w in r["workers"]) == 2)

    p.stop_process(native)
    wait_for(p, lambda r: [w["name"] for w in r["workers"]] == ["python-1"])
