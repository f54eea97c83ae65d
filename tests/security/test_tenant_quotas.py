"""Quotas per tenant: a tenant holding SLUICE_TENANT_MAX_QUEUED queued jobs (all types together)
gets 429 tenant_queue_full, with Retry-After over HTTP, while other tenants still submit; a
tenant running SLUICE_TENANT_MAX_RUNNING jobs waits without holding the others up. The tenants
submit through a peer with an allowed api key, as the api will once it has API keys."""
import msgpack

from peers import rogue_api, sleeps_then_worker, submit_body, submit_jobs
from pipeline import most_at_once


def test_a_tenant_past_its_queued_jobs_gets_429_while_the_others_submit(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo,sleep", SLUICE_TENANT_MAX_QUEUED="3")
    # No worker: everything stays queued. The limit counts the tenant's jobs of every type.
    first = p.submit("echo", 1)["id"]
    p.submit("sleep", {"ms": 1})
    p.submit("echo", 2)
    refused = p.http.post("/v1/jobs", json={"type": "sleep", "input": {"ms": 1}})
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == {
        "code": "tenant_queue_full", "message": "tenant 'default' has 3 jobs queued, its limit (SLUICE_TENANT_MAX_QUEUED)"}
    with rogue_api(p) as api:
        submit_jobs(api, "other", 3, type_="echo")
        assert api.request(b"\x01", submit_body(9, tenant="other", input_=msgpack.packb(4)))[1:3] == [
            429, "tenant_queue_full"]
    # A queued job that runs makes room again.
    p.start_worker("native")
    assert p.wait_result(first)["status"] == "succeeded"
    assert p.http.post("/v1/jobs", json={"type": "echo", "input": 3}).status_code == 202


def test_a_tenant_at_its_running_limit_waits_while_the_others_run(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep", SLUICE_TENANT_MAX_RUNNING="2")
    acme, beta = sleeps_then_worker(p, 6, acme=(8, 300), beta=(2, 300))
    acme_times, beta_times = p.wait_finished(acme), p.wait_finished(beta)
    assert most_at_once(acme_times) == 2
    # Beta did not queue behind acme's backlog: its jobs ran beside acme's first two.
    first_acme_done = min(finished for _, finished in acme_times)
    assert all(started < first_acme_done for started, _ in beta_times), (beta_times, first_acme_done)
