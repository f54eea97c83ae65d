"""Flows (README.md, "Flows"): POST /v1/flows stores a parent and its children at once; the
children run on any workers, the parent waits as waiting_children without a slot and then runs
with their outcomes in ctx.children; a child's failure fails the parent (or not, on_failure
"ignore") and cancels its siblings; canceling the parent cancels its children; a handler's
ctx.spawn() makes its job a flow's parent; the parent's stream shows each child's end; a flow
survives a broker restart. Hostile bodies get 4xx and store nothing; another tenant's flow does
not exist for a caller."""
import signal
import time
import uuid

import pytest

from pipeline import iter_sse, running_pipeline
from sluice.client import Client

ADMIN_KEY = "f" * 40
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required; one Python worker with ONE slot serving the default tasks and flow_tasks
    (a parent that held its slot while waiting would starve its own children); member keys of
    tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY}
    with running_pipeline(tmp_path_factory.mktemp("flows"), lambda: request.session.testsfailed, env=env) as p:
        p.add_task_modules()
        p.start_worker("python", concurrency=1, modules=["sluice.tasks", "flow_tasks"])
        p.wait_ready("collect")
        yield p, p.member_keys(ADMIN_KEY, "acme", "beta")


def flow(p, headers, parent, children, **extra_headers):
    return p.http.post("/v1/flows", json={"parent": parent, "children": children},
                       headers={**headers, **extra_headers})


def job(p, headers, job_id) -> dict:
    got = p.http.get(f"/v1/jobs/{job_id}", headers=headers)
    assert got.status_code == 200, got.text
    return got.json()


def finished(p, headers, job_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = job(p, headers, job_id)
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.05)
    raise TimeoutError(job_id)


def stream(p, headers, job_id) -> list[dict]:
    """The job's events, read to the end of its SSE stream."""
    return list(iter_sse(p.http, f"/v1/jobs/{job_id}/events", headers, 60))


def test_children_run_then_the_parent_with_their_outcomes(site):
    p, keys = site
    marker = uuid.uuid4().hex
    made = flow(p, keys["acme"], {"type": "collect", "input": {"marker": marker}},
                [{"type": "echo", "input": {"n": 1, "marker": marker}},
                 {"type": "sleep", "input": {"ms": 300}},
                 {"type": "echo", "input": {"n": 3}}])
    assert made.status_code == 202, made.text
    body = made.json()
    assert body["status"] == "waiting_children" and body["type"] == "collect"
    children = body["children"]
    assert [c["type"] for c in children] == ["echo", "sleep", "echo"]
    assert all(c["on_failure"] == "fail_parent" for c in children)

    parent = finished(p, keys["acme"], body["id"])
    assert parent["status"] == "succeeded", parent
    assert parent["children"] == [c["id"] for c in children]
    got = parent["result"]["children"]
    assert [c["id"] for c in got] == [c["id"] for c in children]
    assert got[0]["result"] == {"n": 1, "marker": marker} and got[1]["result"] == {"slept_ms": 300}
    assert all(c["status"] == "succeeded" and c["error"] == "" for c in got)
    assert parent["result"]["attempt"] == 1
    # The parent started only once every child had finished.
    times = p.run_times([body["id"]] + [c["id"] for c in children])
    assert times[0][0] >= max(finished_ms for _, finished_ms in times[1:])
    for child in children:
        assert job(p, keys["acme"], child["id"])["parent"] == body["id"]
    # Its stream shows each child's end, then it runs.
    events = stream(p, keys["acme"], body["id"])
    names = [e["event"] for e in events]
    assert names[0] == "waiting_children" and names[-1] == "succeeded"
    ends = [e["data"] for e in events if e["event"] == "child"]
    assert sorted(e["child"] for e in ends) == sorted(c["id"] for c in children)
    assert all(e["status"] == "succeeded" for e in ends)
    assert names.index("started") > max(i for i, name in enumerate(names) if name == "child")


def test_a_failed_child_fails_the_parent_and_cancels_its_siblings(site):
    p, keys = site
    made = flow(p, keys["acme"], {"type": "collect"},
                [{"type": "sleep", "input": {"ms": 20000}},
                 {"type": "fail", "input": {"message": "boom", "retryable": False}}])
    assert made.status_code == 202, made.text
    body = made.json()
    parent = finished(p, keys["acme"], body["id"], timeout=30)
    failed_child = body["children"][1]["id"]
    assert parent["status"] == "failed" and parent["error_code"] == "child_failed", parent
    assert failed_child in parent["error"] and "boom" in parent["error"]
    assert parent["attempts"] == 0, "the parent's own handler never ran"
    sibling = finished(p, keys["acme"], body["children"][0]["id"], timeout=30)
    assert sibling["status"] == "canceled", sibling


def test_an_ignored_failure_still_runs_the_parent(site):
    p, keys = site
    made = flow(p, keys["acme"], {"type": "collect"},
                [{"type": "fail", "input": {"message": "ignored", "retryable": False}, "on_failure": "ignore"},
                 {"type": "echo", "input": "ok"}])
    assert made.status_code == 202, made.text
    parent = finished(p, keys["acme"], made.json()["id"])
    assert parent["status"] == "succeeded", parent
    first, second = parent["result"]["children"]
    assert first["status"] == "failed" and "ignored" in first["error"] and first["result"] is None
    assert second["status"] == "succeeded" and second["result"] == "ok"


def test_canceling_the_parent_cancels_its_children(site):
    p, keys = site
    made = flow(p, keys["acme"], {"type": "collect"},
                [{"type": "sleep", "input": {"ms": 30000}}, {"type": "sleep", "input": {"ms": 30000}}])
    assert made.status_code == 202, made.text
    body = made.json()
    p.wait_started([body["children"][0]["id"]], timeout=15)
    canceled = p.http.delete(f"/v1/jobs/{body['id']}", headers=keys["acme"])
    assert canceled.status_code == 200, canceled.text
    for child in body["children"]:
        assert finished(p, keys["acme"], child["id"], timeout=15)["status"] == "canceled"
    assert job(p, keys["acme"], body["id"])["status"] == "canceled"
    # The running child's handler was stopped: the one slot is free for the next job.
    echo = p.http.post("/v1/jobs", json={"type": "echo", "input": 1}, headers=keys["acme"]).json()["id"]
    assert finished(p, keys["acme"], echo, timeout=15)["status"] == "succeeded"


def test_a_handler_spawns_children_and_runs_again_with_their_results(site):
    p, keys = site
    made = p.http.post("/v1/jobs", json={"type": "fan_out", "input": {"sleeps": [100, 200, 300]},
                                         "options": {"max_attempts": 1}}, headers=keys["acme"])
    assert made.status_code == 202, made.text
    parent = finished(p, keys["acme"], made.json()["id"])
    # max_attempts 1, two runs: the spawning run ended no attempt of the handler's.
    assert parent["status"] == "succeeded", parent
    assert parent["result"] == {"slept_ms": 600, "statuses": ["succeeded"] * 3, "attempt": 2}
    assert [h["outcome"] for h in parent["history"]] == ["spawned", "succeeded"]
    assert len(parent["children"]) == 3


def test_spawning_an_unknown_type_fails_the_job_for_good(site):
    p, keys = site
    made = p.http.post("/v1/jobs", json={"type": "spawn_unknown"}, headers=keys["acme"])
    parent = finished(p, keys["acme"], made.json()["id"])
    assert parent["status"] == "failed" and "no_such_type" in parent["error"], parent
    assert parent["attempts"] == 1


def test_an_idempotent_flow_is_stored_once(site):
    p, keys = site
    key = {"Idempotency-Key": uuid.uuid4().hex}
    children = [{"type": "echo", "input": 1}]
    first = flow(p, keys["acme"], {"type": "collect"}, children, **key)
    again = flow(p, keys["acme"], {"type": "collect"}, children, **key)
    assert first.status_code == 202 and again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    other = flow(p, keys["acme"], {"type": "collect"}, [{"type": "echo", "input": 2}], **key)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


def test_another_tenant_cannot_see_or_cancel_a_flow(site):
    p, keys = site
    made = flow(p, keys["acme"], {"type": "collect"}, [{"type": "sleep", "input": {"ms": 500}}])
    body = made.json()
    for job_id in (body["id"], body["children"][0]["id"]):
        assert p.http.get(f"/v1/jobs/{job_id}", headers=keys["beta"]).status_code == 404
        assert p.http.delete(f"/v1/jobs/{job_id}", headers=keys["beta"]).status_code == 404
    assert finished(p, keys["acme"], body["id"])["status"] == "succeeded"


@pytest.mark.parametrize("body, status, code", [
    ({"children": [{"type": "echo"}]}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": []}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo"}] * 101}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": {"type": "echo"}}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": ["echo"]}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo", "on_failure": "retry"}]}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo", "on_failure": 1}]}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo", "options": {"delay_s": 5}}]}, 422,
     "invalid_request"),
    ({"parent": {"type": "collect", "options": {"cache_ttl_s": 5}}, "children": [{"type": "echo"}]}, 422,
     "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo", "options": {"dedupe": True}}]}, 422,
     "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo", "options": {"priority": 99}}]}, 422,
     "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "nobody_serves_this"}]}, 422, "unknown_job_type"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo"}], "extra": 1}, 422, "invalid_request"),
    ({"parent": {"type": "collect"}, "children": [{"type": "echo", "input": "x" * 300_000},
                                                  {"type": "echo", "input": "y" * 300_000}]}, 413, "input_too_large"),
])
def test_hostile_flows_are_refused_and_store_nothing(site, body, status, code):
    p, keys = site
    with p.redis_client() as redis:
        before = redis.call("ZCARD", "sluice:jobs:acme")
    got = p.http.post("/v1/flows", json=body, headers=keys["acme"])
    assert got.status_code == status, got.text
    assert got.json()["error"]["code"] == code
    with p.redis_client() as redis:
        assert redis.call("ZCARD", "sluice:jobs:acme") == before


def test_a_body_that_is_not_json_gets_400(site):
    p, keys = site
    got = p.http.post("/v1/flows", content=b"{not json", headers={**keys["acme"], "Content-Type": "application/json"})
    assert got.status_code == 400 and got.json()["error"]["code"] == "invalid_json"


def test_a_waiting_flow_survives_a_broker_restart(site):
    p, keys = site
    made = flow(p, keys["acme"], {"type": "collect"},
                [{"type": "sleep", "input": {"ms": 1500}}, {"type": "echo", "input": "e"}])
    assert made.status_code == 202, made.text
    body = made.json()
    p.wait_started([body["children"][0]["id"]], timeout=15)
    p.broker.send_signal(signal.SIGKILL)
    p.broker.wait()
    p.start_broker(same_endpoints=True)
    parent = finished(p, keys["acme"], body["id"], timeout=60)
    assert parent["status"] == "succeeded", parent
    assert [c["status"] for c in parent["result"]["children"]] == ["succeeded", "succeeded"]


def test_the_python_client_submits_a_flow(site):
    p, keys = site
    api_key = keys["acme"]["Authorization"].removeprefix("Bearer ")
    with Client(p.url, api_key=api_key) as client:
        parent = client.submit_flow({"type": "collect"}, [{"type": "echo", "input": "a"},
                                                          {"type": "fail", "input": {"message": "no", "retryable": False},
                                                           "on_failure": "ignore"}])
        assert parent.status == "waiting_children" and len(parent.raw["children"]) == 2
        done = client.wait(parent.id, timeout=60)
    assert done.status == "succeeded", done
    assert [c["status"] for c in done.result["children"]] == ["succeeded", "failed"]


def test_a_flows_children_run_at_once_on_as_many_workers(tmp_path, request):
    """Three workers of one slot each: a flow's three children take all three at once (the
    waiting parent holds none), then the parent runs on whichever is free."""
    with running_pipeline(tmp_path, lambda: request.session.testsfailed) as p:
        p.add_task_modules()
        names = [f"flow-worker-{i}" for i in range(3)]
        for name in names:
            p.start_worker("python", concurrency=1, name=name, modules=["sluice.tasks", "flow_tasks"])
        p.wait_workers(*names)
        made = flow(p, {}, {"type": "collect"}, [{"type": "sleep", "input": {"ms": 1000}}] * 3)
        assert made.status_code == 202, made.text
        parent = finished(p, {}, made.json()["id"])
        assert parent["status"] == "succeeded", parent
        ran_on = {job(p, {}, child)["history"][0]["worker"] for child in parent["children"]}
        assert ran_on == set(names)


def test_a_deduped_submit_joins_a_parent_waiting_for_its_children(site):
    p, keys = site
    body = {"type": "fan_out", "input": {"sleeps": [1500], "tag": uuid.uuid4().hex}, "options": {"dedupe": True}}
    first = p.http.post("/v1/jobs", json=body, headers=keys["acme"]).json()
    deadline = time.monotonic() + 30
    while job(p, keys["acme"], first["id"])["status"] != "waiting_children":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = p.http.post("/v1/jobs", json=body, headers=keys["acme"])
    assert second.status_code == 202, second.text
    assert second.json()["joined"] == first["id"] and second.json()["status"] == "waiting_children"
    leader, joiner = finished(p, keys["acme"], first["id"]), finished(p, keys["acme"], second.json()["id"])
    assert leader["status"] == joiner["status"] == "succeeded"
    assert joiner["result"] == leader["result"] and leader["result"]["slept_ms"] == 1500
    # One flow ran: one child, and the handler's two runs, for both jobs.
    assert len(leader["children"]) == 1
    assert [h["outcome"] for h in joiner["history"]] == ["spawned", "succeeded"]
