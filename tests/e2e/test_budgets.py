"""Token budgets (README.md, "Token budgets"): admins set a (tenant, model)'s tokens and requests
per minute over /v1/budgets (members get 403; hostile bodies 422); the broker reserves each job's
estimate at dispatch, settles it with the usage the worker reports (streamed tokens included),
and keeps a tenant's jobs queued, attempts untouched, once its budget for the window is spent,
while another tenant's jobs of the same model run; the next window runs them. The real embedded
model (SmolLM2-135M, `chat`, streamed) on one worker slot; the window is SLUICE_BUDGET_WINDOW_MS,
a few seconds here instead of a minute."""
from __future__ import annotations

import time

import pytest

from pipeline import running_pipeline

ADMIN_KEY = "b" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "SmolLM2-135M-Instruct"
WINDOW_MS = 4000
TOKENS_PER_WINDOW = 200
# "Holds within a few percent": what one window may count past its limit.
SLACK = 1.05
NAMES = ["Ada", "Bob", "Cyd", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY}
    with running_pipeline(tmp_path_factory.mktemp("budgets"), lambda: request.session.testsfailed, env=env,
                          SLUICE_BUDGET_WINDOW_MS=str(WINDOW_MS)) as p:
        p.start_worker("python", concurrency=1, SLUICE_MODEL_PROVIDER="local", SLUICE_MAX_TOKENS="8")
        p.wait_ready("chat")
        yield p, p.member_keys(ADMIN_KEY, "acme", "beta")


def put(p, body, headers=ADMIN):
    return p.http.put("/v1/budgets", json=body, headers=headers)


def test_budgets_are_set_listed_and_deleted_by_admins_only(site):
    p, keys = site
    budget = {"tenant": "gamma", "model": "meta-llama/Llama-3.1-8B", "tokens_per_minute": 1000}
    made = put(p, budget)
    assert made.status_code == 200, made.text
    assert made.json() == {**budget, "requests_per_minute": 0}
    assert put(p, {**budget, "requests_per_minute": 5}).json()["requests_per_minute"] == 5  # replaced
    listed = p.http.get("/v1/budgets", headers=ADMIN).json()["budgets"]
    assert {**budget, "requests_per_minute": 5} in listed
    for method, call in (("PUT", lambda h: put(p, budget, h)), ("GET", lambda h: p.http.get("/v1/budgets", headers=h)),
                         ("DELETE", lambda h: p.http.delete("/v1/budgets", params={"tenant": "gamma", "model": budget["model"]},
                                                            headers=h))):
        refused = call(keys["acme"])
        assert refused.status_code == 403, (method, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
    gone = p.http.delete("/v1/budgets", params={"tenant": "gamma", "model": budget["model"]}, headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    again = p.http.delete("/v1/budgets", params={"tenant": "gamma", "model": budget["model"]}, headers=ADMIN)
    assert again.status_code == 404 and again.json()["error"]["code"] == "budget_not_found"


@pytest.mark.parametrize("body", [
    {"tenant": "a b", "model": "m", "tokens_per_minute": 1},
    {"tenant": "t" * 65, "model": "m", "tokens_per_minute": 1},
    {"tenant": "", "model": "m", "tokens_per_minute": 1},
    {"tenant": 7, "model": "m", "tokens_per_minute": 1},
    {"tenant": "acme", "model": "", "tokens_per_minute": 1},
    {"tenant": "acme", "model": "m" * 129, "tokens_per_minute": 1},
    {"tenant": "acme", "model": "gpt 4", "tokens_per_minute": 1},
    {"tenant": "acme", "model": "gpt\n4", "tokens_per_minute": 1},
    {"tenant": "acme", "model": "gpt-4ö", "tokens_per_minute": 1},
    {"tenant": "acme", "model": "m", "tokens_per_minute": -1},
    {"tenant": "acme", "model": "m", "tokens_per_minute": 10**10},
    {"tenant": "acme", "model": "m", "tokens_per_minute": 2**64},
    {"tenant": "acme", "model": "m", "tokens_per_minute": 1.5},
    {"tenant": "acme", "model": "m", "tokens_per_minute": "5"},
    {"tenant": "acme", "model": "m", "tokens_per_minute": True},
    {"tenant": "acme", "model": "m", "requests_per_minute": 10**7},
    {"tenant": "acme", "model": "m"},
    {"tenant": "acme", "model": "m", "tokens_per_minute": 0, "requests_per_minute": 0},
    {"tenant": "acme", "model": "m", "tokens_per_minute": 1, "burst": 5},
    {"model": "m", "tokens_per_minute": 1},
    {"tenant": "acme", "tokens_per_minute": 1},
    {"tenant": "acme", "model": "m", "tokens_per_minute": 1, "pad": "x" * 5000},
])
def test_hostile_budgets_get_422(site, body):
    p, _ = site
    refused = put(p, body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'{"tenant": "acme"', b'"acme"'])
def test_a_budget_body_that_is_no_json_object_gets_400(site, raw):
    p, _ = site
    refused = p.http.put("/v1/budgets", content=raw, headers={**ADMIN, "Content-Type": "application/json"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_json"


def test_a_budget_body_that_nests_too_deep_gets_422(site):
    p, _ = site
    deep = b'{"tenant": "acme", "model": "m", "tokens_per_minute": 1, "x": ' + b"[" * 100 + b"]" * 100 + b"}"
    refused = p.http.put("/v1/budgets", content=deep, headers={**ADMIN, "Content-Type": "application/json"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("params", [{}, {"tenant": "acme"}, {"model": "m"}, {"tenant": "a:b", "model": "m"},
                                    {"tenant": "acme", "model": "m m"}, {"tenant": "acme", "model": "m", "x": "1"}])
def test_a_bad_budget_to_delete_gets_422(site, params):
    p, _ = site
    refused = p.http.delete("/v1/budgets", params=params, headers=ADMIN)
    assert refused.status_code == 422, refused.text


def result_of(p, headers, job_id, timeout=180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = p.http.get(f"/v1/jobs/{job_id}/result", params={"wait": 5}, headers=headers)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.text
    raise TimeoutError(f"job {job_id} did not finish")


def jobs_of(p, headers, ids):
    return [p.http.get(f"/v1/jobs/{job_id}", headers=headers).json() for job_id in ids]


def test_a_spent_budget_keeps_its_tenants_jobs_queued_and_holds_within_a_few_percent(site):
    p, keys = site
    assert put(p, {"tenant": "acme", "model": MODEL, "tokens_per_minute": TOKENS_PER_WINDOW}).status_code == 200
    # The broker reads the budgets once a second: wait until its report shows this one.
    deadline = time.monotonic() + 10
    while not p.http.get("/v1/queues", headers=keys["acme"]).json()["budgets"]:
        assert time.monotonic() < deadline, "the broker never reported the budget"
        time.sleep(0.1)

    def submit(tenant, name):
        made = p.http.post("/v1/jobs", headers=keys[tenant],
                           json={"type": "chat", "input": {"prompt": f"Say hi to {name}.", "max_tokens": 8}})
        assert made.status_code == 202, made.text
        return made.json()["id"]

    acme = [submit("acme", name) for name in NAMES]
    beta = [submit("beta", name) for name in NAMES[:3]]

    # Once the window's budget is spent the worker idles while acme's jobs wait, attempts untouched.
    held = []
    deadline = time.monotonic() + 120
    while not held:
        assert time.monotonic() < deadline, "acme's budget never held a job back"
        chat = next(q for q in p.http.get("/v1/queues", headers=ADMIN).json()["queues"] if q["type"] == "chat")
        if chat["running"] == 0 and chat["queued"] > 0:
            held = [j for j in jobs_of(p, keys["acme"], acme) if j["status"] == "queued"]
        time.sleep(0.1)
    assert all(j["attempts"] == 0 and j["history"] == [] for j in held)
    queues = p.http.get("/v1/queues", headers=keys["acme"]).json()
    assert [(b["tenant"], b["model"], b["tokens_per_minute"]) for b in queues["budgets"]] == [
        ("acme", MODEL, TOKENS_PER_WINDOW)]
    assert queues["budget_window_s"] == WINDOW_MS / 1000
    assert p.http.get("/v1/queues", headers=keys["beta"]).json()["budgets"] == []  # not beta's to see

    # The next windows run the rest, each attempt once.
    results = [result_of(p, keys["acme"], job_id)["result"] for job_id in acme]
    done = jobs_of(p, keys["acme"], acme)
    assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in done)
    used = [r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in results]
    assert all(r["usage"]["completion_tokens"] > 0 for r in results)  # streamed, and counted
    with p.redis_admin() as redis:
        names = redis.call("KEYS", f"sluice:budget:use:*:acme:{MODEL}")
        windows = {int(name.decode().split(":")[3]): int(redis.call("HGET", name, "tokens")) for name in names}
    # What each window counted is what the jobs it started used, within the limit (+ a few %),
    # and the windows add up to every token the jobs used.
    assert sum(windows.values()) == sum(used), (windows, used)
    assert max(windows.values()) <= TOKENS_PER_WINDOW * SLACK, windows
    assert len(windows) >= sum(used) // TOKENS_PER_WINDOW
    # beta has no budget: its jobs, submitted after acme's, did not wait for acme's windows.
    beta_finished = max(finished for _, finished in p.wait_finished(beta))
    assert beta_finished < max(started for started, _ in p.run_times(acme))


def test_a_schedules_jobs_wait_for_the_budget_like_submitted_ones(site):
    """A job a cron schedule fires joins its queue as a submitted one does, so dispatch holds it
    for its tenant's budget the same way: with one request a window, a per-second schedule's
    jobs start one a window, each counted in its window's spend, attempts untouched."""
    p, keys = site
    assert put(p, {"tenant": "beta", "model": MODEL, "requests_per_minute": 1}).status_code == 200
    deadline = time.monotonic() + 10
    while not p.http.get("/v1/queues", headers=keys["beta"]).json()["budgets"]:
        assert time.monotonic() < deadline, "the broker never reported the budget"
        time.sleep(0.1)
    made = p.http.post("/v1/schedules", headers=keys["beta"], json={
        "cron": "* * * * * *", "job": {"type": "chat", "input": {"prompt": "Say hi.", "max_tokens": 8}}})
    assert made.status_code == 201, made.text
    schedule = made.json()["id"]

    # A window's spend expires two windows later: read each one while it is there.
    requests_by_window: dict[int, int] = {}

    def read_spend():
        with p.redis_admin() as redis:
            for name in redis.call("KEYS", f"sluice:budget:use:*:beta:{MODEL}"):
                requests_by_window[int(name.decode().split(":")[3])] = int(redis.call("HGET", name, "requests"))

    def fired_jobs():
        listed = p.http.get("/v1/jobs", params={"limit": 1000}, headers=keys["beta"]).json()["jobs"]
        return [j for j in listed if j.get("schedule_id") == schedule]

    deadline = time.monotonic() + 60
    while p.http.get(f"/v1/schedules/{schedule}", headers=keys["beta"]).json()["fired"] < 3:
        assert time.monotonic() < deadline, "the schedule did not fire 3 times"
        read_spend()
        time.sleep(0.1)
    assert p.http.delete(f"/v1/schedules/{schedule}", headers=keys["beta"]).status_code == 200
    fired = fired_jobs()
    assert len(fired) >= 3
    deadline = time.monotonic() + 120
    while any(j["status"] != "succeeded" for j in fired):
        assert time.monotonic() < deadline, "the fired jobs did not all run"
        read_spend()
        time.sleep(0.1)
        fired = fired_jobs()
    read_spend()
    assert all(j["attempts"] == 1 for j in fired)
    # Every fired job was counted against the budget, one a window.
    assert sum(requests_by_window.values()) == len(fired), requests_by_window
    assert max(requests_by_window.values()) == 1, requests_by_window
    gone = p.http.delete("/v1/budgets", params={"tenant": "beta", "model": MODEL}, headers=ADMIN)
    assert gone.status_code == 200


def test_a_restarted_broker_takes_the_windows_spend_over(tmp_path, request):
    """The spend is in Redis: a broker that restarts mid-window does not hand the budget out
    again. A long window, so it does not turn during the test (if it does, the test says so)."""
    window_ms = 600_000
    with running_pipeline(tmp_path / "restart", lambda: request.session.testsfailed,
                          SLUICE_BUDGET_WINDOW_MS=str(window_ms)) as p:
        p.start_worker("python", concurrency=1, SLUICE_MODEL_PROVIDER="local", SLUICE_MAX_TOKENS="8")
        p.wait_ready("chat")
        budget = {"tenant": "default", "model": MODEL, "tokens_per_minute": 100000}
        assert p.http.put("/v1/budgets", json=budget).status_code == 200
        time.sleep(1.5)  # the broker reads budgets once a second
        window = int(time.time() * 1000) // window_ms
        ids = [p.submit("chat", {"prompt": f"Say hi to {name}.", "max_tokens": 8})["id"] for name in NAMES[:2]]
        usages = [p.wait_result(job_id, timeout=60)["result"]["usage"] for job_id in ids]
        used = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usages)
        # A budget the two jobs have spent: one token more than they used.
        assert p.http.put("/v1/budgets", json={**budget, "tokens_per_minute": used + 1}).status_code == 200

        p.stop_process(p.broker)
        p.start_broker(same_endpoints=True, SLUICE_BUDGET_WINDOW_MS=str(window_ms))
        deadline = time.monotonic() + 20
        while True:  # the worker says READY again on its own; the broker reports both
            budgets = p.http.get("/v1/queues").json()["budgets"]
            workers = p.http.get("/v1/workers").json()["total"]
            if workers and budgets and budgets[0]["tokens_per_minute"] == used + 1:
                break
            assert time.monotonic() < deadline, "the restarted broker never reported the budget"
            time.sleep(0.1)
        if int(time.time() * 1000) // window_ms != window:
            pytest.skip("the budget window turned during the test")
        assert budgets[0]["tokens_used"] == used and budgets[0]["requests_used"] == 2

        # So the next job waits, attempts untouched, while the worker idles.
        held = p.submit("chat", {"prompt": "Say hi to Max.", "max_tokens": 8})["id"]
        for _ in range(3):  # three reports, a second apart: still queued
            time.sleep(1.1)
            assert p.http.get(f"/v1/jobs/{held}").json()["attempts"] == 0
        assert p.http.delete("/v1/budgets", params={"tenant": "default", "model": MODEL}).status_code == 200
        assert p.wait_result(held, timeout=60)["status"] == "succeeded"
