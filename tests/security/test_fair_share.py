"""Fair share (ARCHITECTURE.md, invariant 10): within a job type the tenants with queued jobs take
turns, so one tenant's backlog holds another tenant's jobs back by at most one worker slot each;
a tenant's weight (SLUICE_TENANT_WEIGHTS) is the jobs it takes per turn; a tenant running
SLUICE_TENANT_MAX_RUNNING jobs waits without holding the others up. The tenants submit through
a peer with an allowed api key, as the api will once it has API keys. Who ran when is read from
the job hashes' started_ms and finished_ms."""
import time
import uuid

import msgpack
import zmq

from peers import RogueApi, submit_body


def submit_sleeps(api: RogueApi, tenant: str, count: int, ms: int) -> list[str]:
    """Submits `count` sleep jobs of `ms` as `tenant`, all at once; returns their ids once
    every one is stored."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    bodies = [submit_body(i, job_id, tenant=tenant, type_="sleep", input_=msgpack.packb({"ms": ms}))
              for i, job_id in enumerate(ids)]
    replies = api.requests(b"\x01", bodies, timeout_ms=10_000)
    assert all(reply is not None and reply[1] == 202 for reply in replies), replies[:3]
    return ids


def run_times(p, ids: list[str]) -> list[tuple[int, int]]:
    """(started_ms, finished_ms) of each job, 0 for what has not happened yet."""
    with p.redis_admin() as redis:
        rows = redis.pipeline([["HMGET", f"sluice:job:{job_id}", "started_ms", "finished_ms"] for job_id in ids])
    return [(int(started or 0), int(finished or 0)) for started, finished in rows]


def wait_finished(p, ids: list[str], timeout: float = 60) -> list[tuple[int, int]]:
    """run_times() once every job has finished."""
    deadline = time.monotonic() + timeout
    while True:
        times = run_times(p, ids)
        if all(finished for _, finished in times):
            return times
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.1)


def most_at_once(times: list[tuple[int, int]]) -> int:
    """The most of these runs that overlapped at any moment (a run ending as another starts
    does not overlap it)."""
    edges = sorted([(finished, -1) for _, finished in times] + [(started, 1) for started, _ in times])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def with_api(p, use):
    """Returns use(api) for an api peer of its own, closed after."""
    context = zmq.Context()
    try:
        return use(RogueApi(context, p))
    finally:
        context.destroy(linger=0)


def test_a_backlog_of_5000_holds_another_tenants_jobs_back_by_one_slot_each(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep")
    acme, beta = with_api(p, lambda api: (submit_sleeps(api, "acme", 5000, 20), submit_sleeps(api, "beta", 10, 20)))
    # One slot, so the jobs start one after another, 20 ms apart.
    p.start_worker("native", concurrency=1)
    beta_times = wait_finished(p, beta)
    last_beta = max(started for started, _ in beta_times)
    acme_before = sum(1 for started, _ in run_times(p, acme) if 0 < started < last_beta)
    # Turns alternate: acme, beta, acme, beta, ... (first in first out would have been 5000).
    assert acme_before <= len(beta) + 1, acme_before


def test_a_tenants_weight_is_its_jobs_per_turn(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep", SLUICE_TENANT_WEIGHTS="acme=3, beta=1")
    acme, beta = with_api(p, lambda api: (submit_sleeps(api, "acme", 60, 10), submit_sleeps(api, "beta", 10, 10)))
    p.start_worker("native", concurrency=1)
    last_beta = max(started for started, _ in wait_finished(p, beta))
    acme_before = sum(1 for started, _ in run_times(p, acme) if 0 < started < last_beta)
    assert 3 * len(beta) - 3 <= acme_before <= 3 * len(beta) + 3, acme_before


def test_a_tenant_at_its_running_limit_waits_while_the_others_run(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep", SLUICE_TENANT_MAX_RUNNING="2")
    acme, beta = with_api(p, lambda api: (submit_sleeps(api, "acme", 8, 300), submit_sleeps(api, "beta", 2, 300)))
    p.start_worker("native", concurrency=6)
    acme_times, beta_times = wait_finished(p, acme), wait_finished(p, beta)
    assert most_at_once(acme_times) == 2
    # Beta did not queue behind acme's backlog: its jobs ran beside acme's first two.
    first_acme_done = min(finished for _, finished in acme_times)
    assert all(started < first_acme_done for started, _ in beta_times), (beta_times, first_acme_done)
