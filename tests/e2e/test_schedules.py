"""Cron schedules (README.md, "Schedules") over real HTTP with keys required: made, listed, read
and deleted per tenant (another tenant's schedule is 404, an admin sees every one), hostile
bodies refused with a stable code, the per-tenant cap, and a per-second schedule firing one job
per tick, each job recording its schedule and tick."""
from datetime import datetime, timezone
import time

import pytest

from pipeline import running_pipeline

ADMIN_KEY = "s" * 40
MAX_SCHEDULES = 3
ECHO = {"type": "echo", "input": {"report": "daily"}}


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Keys required, a native worker (echo), a cap of MAX_SCHEDULES a tenant, member keys of
    tenants acme, beta and full."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY,
           "SLUICE_MAX_SCHEDULES_PER_TENANT": str(MAX_SCHEDULES), "SLUICE_SCHEDULE_MAX_BYTES": "4096"}
    with running_pipeline(tmp_path_factory.mktemp("schedules"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        yield p, admin, p.member_keys(ADMIN_KEY, "acme", "beta", "full")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def code(response) -> str:
    return response.json()["error"]["code"]


def create(p, headers, status=201, **body):
    response = p.http.post("/v1/schedules", json={"job": ECHO, **body}, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def test_a_schedule_is_made_listed_read_and_deleted(site):
    p, _, keys = site
    before = time.time() * 1000
    made = create(p, keys["acme"], cron="*/5 * * * *", timezone="Europe/Paris")
    assert made["id"].startswith("sch_") and made["tenant"] == "acme"
    assert (made["cron"], made["timezone"], made["missed"]) == ("*/5 * * * *", "Europe/Paris", "run_once")
    assert made["job"] == ECHO
    assert (made["fired"], made["skipped"], made["refused"], made["last_tick"], made["last_job_id"]) == (0, 0, 0, None, None)
    next_tick = ms(made["next_tick"])
    assert before < next_tick <= before + 5 * 60 * 1000 and next_tick % (5 * 60 * 1000) == 0

    listed = p.http.get("/v1/schedules", headers=keys["acme"]).json()
    assert [s["id"] for s in listed["schedules"]] == [made["id"]] and listed["total"] == 1
    assert p.http.get(f"/v1/schedules/{made['id']}", headers=keys["acme"]).json() == made

    deleted = p.http.delete(f"/v1/schedules/{made['id']}", headers=keys["acme"])
    assert deleted.status_code == 200 and deleted.json() == {"id": made["id"], "deleted": True}
    assert code(p.http.get(f"/v1/schedules/{made['id']}", headers=keys["acme"])) == "schedule_not_found"
    assert code(p.http.delete(f"/v1/schedules/{made['id']}", headers=keys["acme"])) == "schedule_not_found"
    assert p.http.get("/v1/schedules", headers=keys["acme"]).json()["total"] == 0
    with p.redis_client() as redis:
        assert redis.call("ZSCORE", "sluice:cron:due", made["id"]) is None


def test_another_tenants_schedule_does_not_exist_to_it(site):
    p, admin, keys = site
    made = create(p, keys["acme"], cron="0 9 * * mon-fri", missed="skip")
    for method in ("GET", "DELETE"):
        refused = p.http.request(method, f"/v1/schedules/{made['id']}", headers=keys["beta"])
        assert refused.status_code == 404 and code(refused) == "schedule_not_found"
    assert p.http.get("/v1/schedules", headers=keys["beta"]).json()["schedules"] == []
    refused = p.http.get("/v1/schedules", params={"tenant": "acme"}, headers=keys["beta"])
    assert refused.status_code == 422 and code(refused) == "invalid_request"
    # An admin sees every tenant's.
    assert p.http.get(f"/v1/schedules/{made['id']}", headers=admin).json()["id"] == made["id"]
    assert [s["id"] for s in p.http.get("/v1/schedules", params={"tenant": "acme"}, headers=admin).json()["schedules"]] \
        == [made["id"]]
    assert p.http.delete(f"/v1/schedules/{made['id']}", headers=admin).status_code == 200


@pytest.mark.parametrize("cron", ["", "* * * *", "0 0 * * * * *", "61 * * * *", "*/0 * * * *", "5-1 * * * *",
                                  "1,,2 * * * *", "garbage in here at all", "@reboot", "0 0 30 2 *", "* " * 70,
                                  "* * * * \u00e9", 5, None, ["* * * * *"]])
def test_a_bad_cron_is_refused(site, cron):
    p, _, keys = site
    assert code(p.http.post("/v1/schedules", json={"cron": cron, "job": ECHO}, headers=keys["acme"])) == "invalid_cron"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../../etc/passwd", "", "europe/paris", "x" * 65, 1])
def test_an_unknown_timezone_is_refused(site, zone):
    p, _, keys = site
    response = p.http.post("/v1/schedules", json={"cron": "* * * * *", "timezone": zone, "job": ECHO}, headers=keys["acme"])
    assert response.status_code == 422 and code(response) == "invalid_timezone", response.text


@pytest.mark.parametrize("body, status, expected", [
    ({"cron": "* * * * *"}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": "echo"}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"input": 1}}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "no such type"}}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "never_declared"}}, 422, "unknown_job_type"),
    ({"cron": "* * * * *", "job": {"type": "echo", "options": {"max_attempts": 0}}}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "echo", "options": {"run_at": "2030-01-01T00:00:00Z"}}}, 422,
     "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "echo", "options": {"cache_ttl_s": 60}}}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "echo", "options": {"dedupe": "yes"}}}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "echo", "options": {"expire_after_s": -1}}}, 422, "invalid_expiry"),
    ({"cron": "* * * * *", "job": ECHO, "missed": "sometimes"}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": ECHO, "every_s": 1}, 422, "invalid_request"),
    ({"cron": "* * * * *", "job": {"type": "echo", "input": "x" * 5000}}, 413, "body_too_large"),
])
def test_a_bad_body_is_refused_with_a_stable_code(site, body, status, expected):
    p, _, keys = site
    response = p.http.post("/v1/schedules", json=body, headers=keys["acme"])
    assert (response.status_code, code(response)) == (status, expected), response.text


def test_a_body_that_is_not_json_or_nests_too_deep_is_refused(site):
    p, _, keys = site
    headers = {**keys["acme"], "Content-Type": "application/json"}
    assert code(p.http.post("/v1/schedules", content=b"{nope", headers=headers)) == "invalid_json"
    assert code(p.http.post("/v1/schedules", content=b"[]", headers=headers)) == "invalid_json"
    deep = b'{"cron": "* * * * *", "job": ' + b"[" * 100 + b"]" * 100 + b"}"
    assert code(p.http.post("/v1/schedules", content=deep, headers=headers)) == "invalid_request"
    for bad in ("nope", "sch_" + "0" * 24, "sch_" + "z" * 24):
        assert code(p.http.get(f"/v1/schedules/{bad}", headers=keys["acme"])) == "schedule_not_found"
    assert code(p.http.get("/v1/schedules", params={"limit": 0}, headers=keys["acme"])) == "invalid_request"
    assert code(p.http.get("/v1/schedules", params={"sort": "x"}, headers=keys["acme"])) == "invalid_request"


def test_a_tenant_holds_at_most_its_cap_of_schedules(site):
    p, _, keys = site
    made = [create(p, keys["full"], cron="0 0 1 1 *") for _ in range(MAX_SCHEDULES)]
    refused = p.http.post("/v1/schedules", json={"cron": "0 0 1 1 *", "job": ECHO}, headers=keys["full"])
    assert refused.status_code == 422 and code(refused) == "too_many_schedules"
    # Another tenant is not held back by it.
    other = create(p, keys["beta"], cron="0 0 1 1 *")
    assert p.http.delete(f"/v1/schedules/{made[0]['id']}", headers=keys["full"]).status_code == 200
    made[0] = create(p, keys["full"], cron="0 0 1 1 *")
    for schedule in made:
        assert p.http.delete(f"/v1/schedules/{schedule['id']}", headers=keys["full"]).status_code == 200
    assert p.http.delete(f"/v1/schedules/{other['id']}", headers=keys["beta"]).status_code == 200


def fired_jobs(p, headers, schedule_id: str) -> list[dict]:
    jobs = p.http.get("/v1/jobs", params={"limit": 1000}, headers=headers).json()["jobs"]
    return sorted((job for job in jobs if job.get("schedule_id") == schedule_id), key=lambda job: job["schedule_tick"])


def test_each_tick_of_a_per_second_schedule_fires_one_job(site):
    p, _, keys = site
    made = create(p, keys["acme"], cron="* * * * * *", job={"type": "echo", "input": {"tick": True},
                                                            "options": {"priority": 3}})
    deadline = time.monotonic() + 30
    while p.http.get(f"/v1/schedules/{made['id']}", headers=keys["acme"]).json()["fired"] < 4:
        assert time.monotonic() < deadline, "the schedule did not fire 4 times"
        time.sleep(0.2)
    assert p.http.delete(f"/v1/schedules/{made['id']}", headers=keys["acme"]).status_code == 200
    jobs = fired_jobs(p, keys["acme"], made["id"])
    ticks = [ms(job["schedule_tick"]) for job in jobs]
    assert len(ticks) >= 4 and ticks[0] == ms(made["next_tick"])
    assert ticks == list(range(ticks[0], ticks[0] + 1000 * len(ticks), 1000)), ticks
    assert all(job["missed_ticks"] == 0 and job["tenant"] == "acme" and job["priority"] == 3 for job in jobs)
    for job in jobs:
        # A fired job is a job like any other: unguessable id, its own events and result.
        done = p.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 20}, headers=keys["acme"]).json()
        assert done["status"] == "succeeded" and done["result"] == {"tick": True}, done
        assert done["schedule_id"] == made["id"] and done["schedule_tick"] == job["schedule_tick"]
    assert len({job["id"] for job in jobs}) == len(jobs)
