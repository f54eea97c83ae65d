"""Redis near its maxmemory: the broker refuses new jobs with 507 storage_full before Redis
refuses writes (it runs with noeviction), so the results of the jobs it took still fit; once
there is room again, submits are accepted. The broker reads INFO memory once a second."""
import time

INPUT = {"text": "x" * 200_000}  # about 200 KB per job in Redis


def used_and_max(p) -> tuple[int, int]:
    with p.redis_client() as redis:
        info = redis.call("INFO", "memory").decode()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return int(fields["used_memory"]), int(fields["maxmemory"])


def test_submits_refused_before_redis_is_full_then_accepted_again(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo", SLUICE_STORAGE_FULL_PERCENT="25")
    used, _ = used_and_max(p)
    limit = used + 20_000_000
    with p.redis_admin() as redis:
        assert redis.call("CONFIG", "SET", "maxmemory", str(limit)) == "OK"
    time.sleep(1.5)  # the broker's next INFO memory

    accepted, refused = [], None
    for _ in range(100):  # at most 20 MB, the whole headroom: the refusal must come first
        response = p.http.post("/v1/jobs", json={"type": "echo", "input": INPUT})
        if response.status_code == 507:
            refused = response
            break
        assert response.status_code == 202, response.text
        accepted.append(response.json()["id"])
        time.sleep(0.05)  # slower than the broker's reading, as a real backlog grows
    assert refused is not None, "never refused"
    assert refused.json()["error"]["code"] == "storage_full"
    assert refused.headers["Retry-After"] == "1"
    used, maxmemory = used_and_max(p)
    assert used < maxmemory
    assert 10 <= len(accepted)
    assert "507 storage_full" in p.logs()

    # The jobs taken can still finish: their results (an echo's is its input, stored twice: in
    # the job and in its `succeeded` event) fit in the headroom left above 25%.
    p.start_worker("native")
    for job_id in accepted:
        assert p.wait_result(job_id)["status"] == "succeeded"

    # Room again (the operator raised maxmemory): accepted within the broker's next reading.
    with p.redis_admin() as redis:
        redis.call("CONFIG", "SET", "maxmemory", "0")
    deadline = time.monotonic() + 5
    while True:
        response = p.http.post("/v1/jobs", json={"type": "echo", "input": {"n": 1}})
        if response.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 202
