"""Both worker kinds run jobs; load spreads across every worker serving a type."""


def test_native_worker_runs_echo_and_sleep(fresh_pipeline):
    p = fresh_pipeline.start()
    worker = p.start_worker("native", concurrency=2)
    p.wait_ready("sleep")
    echo = p.submit("echo", {"native": True, "list": [1, 2, 3]})
    sleep = p.submit("sleep", {"ms": 200})
    assert p.wait_result(echo["id"])["result"] == {"native": True, "list": [1, 2, 3]}
    done = p.wait_result(sleep["id"])
    assert done["status"] == "succeeded" and done["result"] == {"slept_ms": 200}
    assert [e["event"] for e in p.events(sleep["id"])].count("progress") >= 3
    bad = p.wait_result(p.submit("sleep", {"ms": "soon"})["id"])
    assert bad["status"] == "failed" and bad["attempts"] == 1
    assert p.stop_process(worker) == 0


def test_load_is_shared_across_two_python_workers_and_one_native(fresh_pipeline):
    p = fresh_pipeline.start()
    for name in ("py-a", "py-b"):
        p.start_worker("python", concurrency=2, name=name)
    p.start_worker("native", concurrency=2, name="native-a")
    p.wait_workers("py-a", "py-b", "native-a")
    jobs = [p.submit("sleep", {"ms": 100})["id"] for _ in range(30)]
    ran_on = {}
    for job_id in jobs:
        assert p.wait_result(job_id)["status"] == "succeeded"
        with p.redis_client() as redis:
            ran_on[job_id] = redis.call("HGET", f"sluice:job:{job_id}", "worker").decode()
    counts = {name: list(ran_on.values()).count(name) for name in ("py-a", "py-b", "native-a")}
    # Credit-based dispatch follows how fast each worker frees its slots; every one takes part.
    assert all(count >= 3 for count in counts.values()), counts


def test_unknown_type_is_422_until_a_worker_declares_it(fresh_pipeline):
    p = fresh_pipeline.start()
    response = p.http.post("/v1/jobs", json={"type": "text_stats", "input": {"text": "x"}})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_job_type"
    worker = p.start_worker("python")
    p.wait_ready("text_stats")
    job = p.submit("text_stats", {"text": "one two"})
    assert p.wait_result(job["id"])["status"] == "succeeded"
    # A known type whose workers are all down is queued, not refused.
    assert p.stop_process(worker) == 0
    queued = p.submit("text_stats", {"text": "three"})
    assert p.http.get(f"/v1/jobs/{queued['id']}").json()["status"] == "queued"
    p.start_worker("python")
    assert p.wait_result(queued["id"])["result"]["words"] == 1
