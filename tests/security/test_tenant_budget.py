"""Each tenant has a budget of bytes its jobs may hold in Redis (SLUICE_TENANT_MAX_BYTES): past
it, its submits answer 507 storage_full while other tenants' are still taken, and Redis's memory
stays bounded by the budget; the bytes come back when finished jobs expire (SLUICE_JOB_TTL_S)."""
import time

import msgpack
import zmq

from peers import RogueApi, submit_body

BUDGET = 40_000_000
BIG = {"text": "x" * 500_000}  # an echo job holds its input three times: input, result, event


def tenant_bytes(p) -> dict[str, int]:
    with p.redis_admin() as redis:
        held = redis.call("HGETALL", "sluice:tenant_bytes")
    return {held[i].decode(): int(held[i + 1]) for i in range(0, len(held), 2)}


def used_memory(p) -> int:
    with p.redis_client() as redis:
        info = redis.call("INFO", "memory").decode()
    return int(dict(line.split(":", 1) for line in info.splitlines() if ":" in line)["used_memory"])


def test_a_byte_flood_meets_507_with_memory_bounded_and_other_tenants_still_submit(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo", SLUICE_TENANT_MAX_BYTES=str(BUDGET))
    p.start_worker("native", concurrency=8)
    p.wait_ready("echo")
    before = used_memory(p)

    # The attack of the issue: 200 echo jobs of 500 KB, as fast as one client sends them.
    statuses, refusal = [], None
    for _ in range(200):
        response = p.http.post("/v1/jobs", json={"type": "echo", "input": BIG})
        statuses.append(response.status_code)
        if response.status_code == 507:
            refusal = response.json()["error"]
    assert set(statuses) == {202, 507}, statuses
    assert refusal["code"] == "storage_full"
    assert f"tenant 'default' holds" in refusal["message"] and f"its budget is {BUDGET}" in refusal["message"]
    accepted = statuses.count(202)
    assert accepted * 500_000 <= BUDGET, accepted

    time.sleep(2)  # the accepted jobs finish
    # The budget is checked at submit: a job taken still stores its result (twice) past it, and
    # at most the worker's 8 running jobs were taken without theirs counted yet.
    assert tenant_bytes(p)["default"] <= BUDGET + 8 * 2 * len(msgpack.packb(BIG))
    # Accounting follows Redis's own: 200 jobs would have been 300 MB.
    assert used_memory(p) - before < 1.5 * BUDGET

    context = zmq.Context()
    try:
        api = RogueApi(context, p)
        reply = api.request(b"\x01", submit_body(1, tenant="other", input_=msgpack.packb({"n": 1})))
        assert reply[:2] == [1, 202], reply
        reply = api.request(b"\x01", submit_body(2, tenant="default", input_=msgpack.packb(BIG)))
        assert reply[:3] == [2, 507, "storage_full"], reply
    finally:
        context.destroy(linger=0)
    assert set(tenant_bytes(p)) == {"default", "other"}


def test_bytes_come_back_when_finished_jobs_expire(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo", SLUICE_TENANT_MAX_BYTES="2000000", SLUICE_JOB_TTL_S="1")
    p.start_worker("native")
    p.wait_ready("echo")
    job = p.submit("echo", BIG)
    assert p.wait_result(job["id"])["status"] == "succeeded"
    held = tenant_bytes(p)["default"]
    assert 3 * len(msgpack.packb(BIG)) < held < 3 * len(msgpack.packb(BIG)) + 16_000, held
    # A second job of the same size would pass the budget while the first is held.
    assert p.http.post("/v1/jobs", json={"type": "echo", "input": BIG}).status_code == 507

    deadline = time.monotonic() + 5  # 1 s to expire, then the broker's next sweep (once a second)
    while tenant_bytes(p) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tenant_bytes(p) == {}
    with p.redis_client() as redis:
        assert redis.call("ZCARD", "sluice:expiring") == 0
        assert redis.call("ZCARD", "sluice:jobs:default") == 0  # off the tenant's listing too
    assert p.wait_result(p.submit("echo", BIG)["id"])["status"] == "succeeded"


def test_a_job_retried_from_the_dead_set_stays_charged_until_it_ends_again(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    p.start_worker("python")
    p.wait_ready("fail")
    job_id = p.submit("fail", {"message": "no", "retryable": False}, max_attempts=1)["id"]
    assert p.wait_result(job_id)["status"] == "failed"

    def charged() -> tuple[int, list[bytes]]:
        with p.redis_client() as redis:
            return (int(redis.call("HGET", f"sluice:job:{job_id}", "charged")),
                    redis.call("ZRANGE", "sluice:expiring", 0, -1))

    bytes_, expiring = charged()
    assert expiring == [f"{job_id} default {bytes_}".encode()]
    assert tenant_bytes(p) == {"default": bytes_}

    # Retried, the job is no longer due to expire; failed again, it is, charged once for both
    # attempts (the old entry gone, so its bytes are not given back twice).
    assert p.http.post(f"/v1/jobs/{job_id}/retry").status_code == 200
    deadline = time.monotonic() + 10
    while (again := charged())[0] == bytes_ and time.monotonic() < deadline:
        time.sleep(0.05)
    again, expiring = again
    assert again > bytes_  # the second attempt's events and error
    assert expiring == [f"{job_id} default {again}".encode()]
    assert tenant_bytes(p) == {"default": again}
