"""GET /v1/queues against a known set of jobs, per tenant (a member key sees its own tenant's
numbers and nothing of another's; an admin sees every tenant's, or one's with ?tenant=), and a
queued job's queue_position and eta_s in GET /v1/jobs/{id}."""
import time

import pytest
import zmq
from sluice import protocol

from pipeline import next_job, running_pipeline

ADMIN_KEY = "q" * 40


@pytest.fixture
def site(tmp_path, request):
    """Auth required, no workers; `echo` and `slow` known; member keys of tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY}
    with running_pipeline(tmp_path, lambda: request.session.testsfailed, env=env,
                          SLUICE_KNOWN_TYPES="echo,slow") as p:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        yield p, admin, p.member_keys(ADMIN_KEY, "acme", "beta")


def submit(p, headers, job_type="echo", **options) -> str:
    body = {"type": job_type, "input": {"n": 1}, **({"options": options} if options else {})}
    response = p.http.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def queues(p, headers, **params) -> dict:
    response = p.http.get("/v1/queues", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def by_type(body: dict) -> dict:
    return {row["type"]: row for row in body["queues"]}


def wait_report(p, headers, check, timeout: float = 15.0, **params) -> dict:
    """The report once check(rows by type) holds (it is rewritten once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = by_type(queues(p, headers, **params))
        if check(rows):
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def test_queue_numbers_per_tenant(site):
    p, admin, keys = site
    for _ in range(3):
        submit(p, keys["acme"])
    submit(p, keys["acme"], delay_s=3600)
    for _ in range(5):
        submit(p, keys["beta"])
    submit(p, keys["beta"], "slow")
    submit(p, keys["beta"], "slow", delay_s=3600)

    everyone = wait_report(p, admin, lambda r: r.get("echo", {}).get("queued") == 8 and "slow" in r)
    assert everyone["echo"]["scheduled"] == 1 and everyone["echo"]["running"] == 0
    assert everyone["slow"]["queued"] == 1 and everyone["slow"]["scheduled"] == 1
    assert everyone["echo"]["workers"] == 0 and everyone["echo"]["oldest_queued_age_s"] >= 0

    acme = wait_report(p, keys["acme"], lambda r: "echo" in r)
    assert acme == {"echo": {"type": "echo", "workers": 0, "queued": 3, "scheduled": 1, "running": 0,
                             "oldest_queued_age_s": acme["echo"]["oldest_queued_age_s"],
                             "succeeded_last_minute": 0, "failed_last_minute": 0}}
    assert by_type(queues(p, admin, tenant="beta"))["echo"]["queued"] == 5
    assert by_type(queues(p, admin, tenant="beta"))["slow"]["scheduled"] == 1

    # A member names no tenant, and knows no parameter but it.
    for params in ({"tenant": "beta"}, {"bogus": "1"}):
        response = p.http.get("/v1/queues", headers=keys["acme"], params=params)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    assert p.http.get("/v1/queues", headers=admin, params={"tenant": "a:b"}).status_code == 422
    assert p.http.get("/v1/queues").status_code == 401


def test_running_and_finished_jobs_and_workers(site):
    p, admin, keys = site
    context = zmq.Context()
    try:
        worker = p.own_worker(context, "w1", ["echo"])
        p.wait_workers("w1")
        ids = [submit(p, keys["acme"]) for _ in range(2)]
        for _ in range(2):
            taken = next_job(worker)
            worker.send_multipart(protocol.encode(protocol.Result(taken.job_id, taken.attempt, b"\xc0")))
        running = submit(p, keys["acme"])
        assert next_job(worker).job_id == running
        queued = [submit(p, keys["acme"]) for _ in range(2)]

        def settled(rows):
            worker.send_multipart(protocol.encode(protocol.Heartbeat()))
            echo = rows.get("echo", {})
            return echo.get("succeeded_last_minute") == 2 and echo.get("running") == 1 and echo.get("queued") == 2

        rows = wait_report(p, keys["acme"], settled)
        assert rows["echo"]["workers"] == 1
        # beta sees the worker, not acme's jobs.
        beta = by_type(queues(p, keys["beta"]))
        assert beta["echo"]["queued"] == beta["echo"]["running"] == beta["echo"]["succeeded_last_minute"] == 0

        # Queued jobs know their place, 0 first, and (2 ended this minute: one each 30 s) an eta.
        first, second = (p.http.get(f"/v1/jobs/{job_id}", headers=keys["acme"]).json() for job_id in queued)
        assert (first["queue_position"], second["queue_position"]) == (0, 1)
        assert (first["eta_s"], second["eta_s"]) == (30, 60)
        for job_id in [running, *ids]:
            assert "queue_position" not in p.http.get(f"/v1/jobs/{job_id}", headers=keys["acme"]).json()
        # Another tenant's job is not found, place or no place.
        assert p.http.get(f"/v1/jobs/{queued[0]}", headers=keys["beta"]).status_code == 404
    finally:
        context.destroy(linger=0)


def test_a_queued_job_without_a_pace_has_no_eta(site):
    p, _, keys = site
    ids = [submit(p, keys["beta"], "slow") for _ in range(3)]
    bodies = [p.http.get(f"/v1/jobs/{job_id}", headers=keys["beta"]).json() for job_id in ids]
    assert [body["queue_position"] for body in bodies] == [0, 1, 2]
    assert all(body["eta_s"] is None for body in bodies)
    high = submit(p, keys["beta"], "slow", priority=9)
    assert p.http.get(f"/v1/jobs/{high}", headers=keys["beta"]).json()["queue_position"] == 0
