"""Fair share (ARCHITECTURE.md, invariant 10): within a job type the tenants with queued jobs take
turns, so one tenant's backlog holds another tenant's jobs back by at most one worker slot each,
and a tenant's weight (SLUICE_TENANT_WEIGHTS) is the jobs it takes per turn. The tenants submit
through a peer with an allowed api key, as the api will once it has API keys; who ran when is
read from the job hashes' started_ms."""
from peers import sleeps_then_worker


def started_before(p, ids: list[str], moment_ms: int) -> int:
    """How many of the jobs started before `moment_ms`."""
    return sum(1 for started, _ in p.run_times(ids) if 0 < started < moment_ms)


def test_a_backlog_of_5000_holds_another_tenants_jobs_back_by_one_slot_each(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep")
    # One slot, so the jobs start one after another, 20 ms apart.
    acme, beta = sleeps_then_worker(p, 1, acme=(5000, 20), beta=(10, 20))
    last_beta = max(started for started, _ in p.wait_finished(beta))
    # Turns alternate: acme, beta, acme, beta, ... (first in, first out it would be 5000).
    assert started_before(p, acme, last_beta) <= len(beta) + 1


def test_a_tenants_weight_is_its_jobs_per_turn(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep", SLUICE_TENANT_WEIGHTS="acme=3, beta=1")
    acme, beta = sleeps_then_worker(p, 1, acme=(60, 10), beta=(10, 10))
    last_beta = max(started for started, _ in p.wait_finished(beta))
    assert 3 * len(beta) - 3 <= started_before(p, acme, last_beta) <= 3 * len(beta) + 3
