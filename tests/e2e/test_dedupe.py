"""options.dedupe (README.md, "Single-flight (dedupe)"): a submit identical in tenant, type and
input to a job submitted with dedupe that is queued or running joins it instead of running
twice. The joiner has its own id, and its reads (GET, result long-poll, the SSE stream with
Last-Event-ID) show the leader's events, state and result; the handler runs once. Canceling a
joiner leaves the leader running; canceling or failing the leader ends its joiners alike; once
the leader ends, the next identical submit runs again. Tenants never join each other's jobs.
A cron schedule's job with dedupe joins its previous tick's job while that one runs.
The broker-restart case is tests/faults/test_dedupe_restart.py; the broker's own check of the
field, tests/security/test_broker_limits.py."""
import datetime
import json
import threading
import time
import uuid

import pytest
from sluice.client import Client

from pipeline import iter_sse, running_pipeline
from webhook_receiver import Receiver

ADMIN_KEY = "d" * 40
FINAL = ("succeeded", "failed", "canceled")
# Loopback is where the test's webhook receiver listens: allowed here, refused by default.
ALLOW = {"SLUICE_WEBHOOK_ALLOW_NETS": "127.0.0.0/8"}


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required, one Python worker (the built-in tasks and dedupe_tasks), a webhook
    deliverer and a receiver (p.receiver), member keys of tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, **ALLOW}
    with running_pipeline(tmp_path_factory.mktemp("dedupe"), lambda: request.session.testsfailed, env=env) as p:
        p.add_task_modules()
        p.start_worker("python", modules=["sluice.tasks", "dedupe_tasks"], concurrency=8)
        p.wait_ready("gated")
        p.start_webhooks()
        p.receiver = Receiver()
        try:
            yield p, p.member_keys(ADMIN_KEY, "acme", "beta")
        finally:
            p.receiver.close()


class Gate:
    """The files of one gated job: where it counts its runs and the gate that lets it end."""

    def __init__(self, tmp_path, **extra):
        self.runs, self.gate = tmp_path / f"runs-{uuid.uuid4().hex}", tmp_path / f"gate-{uuid.uuid4().hex}"
        self.input = {"runs": str(self.runs), "gate": str(self.gate), **extra}

    def open(self):
        self.gate.touch()

    def run_count(self) -> int:
        return len(self.runs.read_text().splitlines()) if self.runs.exists() else 0


def post(p, headers, input_, job_type="gated", extra_headers=None, **options):
    return p.http.post("/v1/jobs", json={"type": job_type, "input": input_, "options": options},
                       headers={**headers, **(extra_headers or {})})


def until(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def job(p, headers, job_id) -> dict:
    response = p.http.get(f"/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def finished(p, headers, job_id) -> dict:
    return until(lambda: (j := job(p, headers, job_id))["status"] in FINAL and j, f"job {job_id} to end")


def streamed(p, job_id):
    """Waits until the running job has sent both its chunks (the stream as Redis holds it)."""
    def chunks():
        with p.redis_client() as redis:
            entries = redis.call("XRANGE", f"sluice:events:{job_id}", "-", "+")
        return sum(1 for _, fields in entries if b"chunk" in fields) == 2
    until(chunks, f"job {job_id} to stream its chunks")


def events(p, headers, job_id, last_event_id=None) -> list[dict]:
    """The job's SSE stream to its end, each event without its job id."""
    extra = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    got = list(iter_sse(p.http, f"/v1/jobs/{job_id}/events", {**headers, **extra}, 30))
    assert all(e["data"].pop("job_id") == job_id for e in got)
    return got


def leader_running(p, keys, tmp_path, **extra):
    gate = Gate(tmp_path, **extra)
    first = post(p, keys["acme"], gate.input, dedupe=True)
    assert first.status_code == 202, first.text
    assert "joined" not in first.json()
    leader = first.json()["id"]
    until(lambda: gate.run_count() == 1, "the handler to start")
    streamed(p, leader)
    return gate, leader


def test_identical_submits_share_one_run_with_the_same_events_and_result(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path, pad="x" * 20000)
    # The same input, its keys in another order.
    same = dict(reversed(list(gate.input.items())))
    hook = {"url": f"{p.receiver.url}/ok/joiner", "events": ["queued", "started", "succeeded"]}
    again = post(p, keys["acme"], same, dedupe=True, webhook=hook)
    assert again.status_code == 202, again.text
    joiners = [again.json()["id"]]
    # The Python client passes the option through and names the job joined.
    with Client(p.url, api_key=keys["acme"]["Authorization"].removeprefix("Bearer ")) as client:
        joiners.append(client.submit("gated", gate.input, dedupe=True).id)
        assert client.get(joiners[1]).joined == leader
    for joiner in joiners:
        b = job(p, keys["acme"], joiner)
        assert b["id"] == joiner != leader and b["joined"] == leader and b["tenant"] == "acme", b
        assert b["status"] == "running" and b["attempts"] == 1, b
    assert again.json()["joined"] == leader and again.json()["status"] == "running", again.text

    # A follower of a joiner's stream while the leader runs, and a long-poll of the other one.
    followed, polled = [], {}

    def follow():
        for event in iter_sse(p.http, f"/v1/jobs/{joiners[0]}/events", keys["acme"], 60):
            followed.append(event)

    follower = threading.Thread(target=follow)
    poller = threading.Thread(target=lambda: polled.update(
        p.http.get(f"/v1/jobs/{joiners[1]}/result", params={"wait": 60}, headers=keys["acme"], timeout=90).json()))
    follower.start()
    poller.start()
    # What the leader had sent before the joiner came: queued, started, two chunks and progress.
    until(lambda: len(followed) >= 6, "the follower to read the copy")
    gate.open()
    poller.join(90)
    follower.join(90)

    a = finished(p, keys["acme"], leader)
    assert a["status"] == "succeeded" and a["result"] == {"text": "c0 c1 end"}, a
    assert polled["status"] == "succeeded" and polled["result"] == a["result"], polled
    for joiner in joiners:
        b = finished(p, keys["acme"], joiner)
        assert b["result"] == a["result"] and b["status"] == "succeeded" and b["joined"] == leader
        assert b["attempts"] == a["attempts"] == 1 and b["history"] == a["history"] and len(a["history"]) == 1
        assert b["finished_at"] == a["finished_at"]
    assert gate.run_count() == 1, "the handler ran once for three jobs"

    # Every stream is the leader's: the same events under the same ids, chunks and progress too.
    stream = events(p, keys["acme"], leader)
    assert [e["event"] for e in stream].count("chunk") == 3 and "progress" in [e["event"] for e in stream]
    assert all(e["data"].pop("job_id") == joiners[0] for e in followed) and followed == stream
    for joiner in joiners:
        assert events(p, keys["acme"], joiner) == stream
        # A reconnect with Last-Event-ID gets what came after it.
        assert events(p, keys["acme"], joiner, last_event_id=3) == [e for e in stream if e["id"] > 3]

    # A joiner does not hold the input a second time; its bytes are its own events and result.
    with p.redis_admin() as redis:
        assert redis.call("HEXISTS", f"sluice:job:{leader}", "input") == 1
        assert redis.call("HEXISTS", f"sluice:job:{joiners[0]}", "input") == 0
        charged = {job_id: int(redis.call("HGET", f"sluice:job:{job_id}", "charged")) for job_id in [leader, *joiners]}
        # The leader's run is ended: its single-flight key is gone.
        assert redis.call("HEXISTS", f"sluice:job:{leader}", "joiners") == 0
        assert not redis.call("KEYS", "sluice:dedupe:acme:*")
    assert charged[leader] > 20000 > charged[joiners[0]] > 3072, charged

    # The joiner's own webhook got the lifecycle events it asked for, as its own job's.
    delivered = [r for r in p.receiver.wait("/ok/joiner", 3)]
    assert sorted(json.loads(body)["type"] for _, _, body in delivered) == ["job.queued", "job.started",
                                                                           "job.succeeded"]
    assert {json.loads(body)["data"]["id"] for _, _, body in delivered} == {joiners[0]}

    # The leader has ended, so the same submit runs again.
    gate.gate.unlink()
    again = post(p, keys["acme"], gate.input, dedupe=True)
    assert again.status_code == 202 and "joined" not in again.json(), again.text
    until(lambda: gate.run_count() == 2, "the second run")
    gate.open()
    assert finished(p, keys["acme"], again.json()["id"])["status"] == "succeeded"


def test_a_websocket_follows_a_joiner_as_its_leader(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path)
    joiner = post(p, keys["acme"], gate.input, dedupe=True).json()["id"]
    got = {leader: [], joiner: []}
    with p.websocket(additional_headers=keys["acme"]) as conn:
        for job_id in got:
            conn.send(json.dumps({"op": "subscribe", "job_id": job_id}))
        gate.open()
        while not all(got[job_id] and got[job_id][-1]["event"] in FINAL for job_id in got):
            message = json.loads(conn.recv(timeout=30))
            if message["op"] == "event":
                got[message.pop("job_id")].append(message)
    assert got[joiner] == got[leader] and got[leader][-1]["event"] == "succeeded"


def test_canceling_a_joiner_leaves_the_leader_running(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path)
    joiner = post(p, keys["acme"], gate.input, dedupe=True).json()["id"]
    canceled = p.http.delete(f"/v1/jobs/{joiner}", headers=keys["acme"])
    assert canceled.status_code == 200, canceled.text
    assert job(p, keys["acme"], joiner)["status"] == "canceled"
    assert job(p, keys["acme"], leader)["status"] == "running"
    # Still joinable by others.
    later = post(p, keys["acme"], gate.input, dedupe=True).json()
    assert later["joined"] == leader, later
    gate.open()
    assert finished(p, keys["acme"], leader)["status"] == "succeeded"
    assert finished(p, keys["acme"], later["id"])["status"] == "succeeded"
    b = job(p, keys["acme"], joiner)
    assert b["status"] == "canceled" and b["result"] is None
    assert [e["event"] for e in events(p, keys["acme"], joiner)][-1] == "canceled"
    assert gate.run_count() == 1


def test_canceling_the_leader_cancels_its_joiners(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path)
    joiner = post(p, keys["acme"], gate.input, dedupe=True).json()["id"]
    assert p.http.delete(f"/v1/jobs/{leader}", headers=keys["acme"]).status_code == 200
    assert job(p, keys["acme"], joiner)["status"] == "canceled"
    assert events(p, keys["acme"], joiner) == events(p, keys["acme"], leader)
    # Nothing runs for that key any more: the next identical submit runs anew.
    again = post(p, keys["acme"], gate.input, dedupe=True).json()
    assert "joined" not in again, again
    gate.open()
    assert finished(p, keys["acme"], again["id"])["status"] == "succeeded"


def test_a_failed_leader_fails_its_joiners_and_only_it_is_dead(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path, fail=True)
    joiner = post(p, keys["acme"], gate.input, dedupe=True).json()["id"]
    gate.open()
    a, b = finished(p, keys["acme"], leader), finished(p, keys["acme"], joiner)
    assert a["status"] == b["status"] == "failed" and b["error"] == a["error"] == "NonRetryableError: gated job failed on purpose"
    dead = p.http.get("/v1/dead", headers=keys["acme"]).json()
    dead_ids = {j["id"] for j in dead["jobs"]}
    assert leader in dead_ids and joiner not in dead_ids, dead
    # A joiner is retried through its leader: it has no input of its own to run.
    assert p.http.post(f"/v1/jobs/{joiner}/retry", headers=keys["acme"]).status_code == 409


def test_tenants_never_join_each_other(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path)
    other = post(p, keys["beta"], gate.input, dedupe=True)
    assert other.status_code == 202 and "joined" not in other.json(), other.text
    until(lambda: gate.run_count() == 2, "beta's own run")
    assert p.http.get(f"/v1/jobs/{leader}", headers=keys["beta"]).status_code == 404
    gate.open()
    assert finished(p, keys["beta"], other.json()["id"])["status"] == "succeeded"
    assert "joined" not in job(p, keys["beta"], other.json()["id"])


def test_only_dedupe_submits_join_and_lead(site, tmp_path):
    p, keys = site
    gate = Gate(tmp_path)
    plain = post(p, keys["acme"], gate.input).json()["id"]
    until(lambda: gate.run_count() == 1, "the plain job to start")
    # A job submitted without dedupe is not joined; one submitted with dedupe: false joins nothing.
    led = post(p, keys["acme"], gate.input, dedupe=True).json()
    off = post(p, keys["acme"], gate.input, dedupe=False).json()
    assert "joined" not in led and "joined" not in off
    until(lambda: gate.run_count() == 3, "three runs")
    gate.open()
    for job_id in (plain, led["id"], off["id"]):
        assert finished(p, keys["acme"], job_id)["status"] == "succeeded"


def test_at_most_100_jobs_join_one_and_the_next_runs_on_its_own(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path)
    joiners = [post(p, keys["acme"], gate.input, dedupe=True).json() for _ in range(100)]
    assert {j.get("joined") for j in joiners} == {leader}
    # The leader is full: this one runs, and leads for the submits after it.
    own = post(p, keys["acme"], gate.input, dedupe=True).json()
    assert "joined" not in own, own
    until(lambda: gate.run_count() == 2, "the second run")
    assert post(p, keys["acme"], gate.input, dedupe=True).json()["joined"] == own["id"]
    gate.open()
    ended = {finished(p, keys["acme"], j["id"])["status"] for j in [*joiners, own]}
    assert ended == {"succeeded"} and gate.run_count() == 2


def test_an_idempotent_replay_names_the_job_it_joined(site, tmp_path):
    p, keys = site
    gate, leader = leader_running(p, keys, tmp_path)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = post(p, keys["acme"], gate.input, extra_headers=key, dedupe=True)
    replay = post(p, keys["acme"], gate.input, extra_headers=key, dedupe=True)
    assert first.json()["joined"] == leader, first.text
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true", replay.text
    assert replay.json()["id"] == first.json()["id"] and replay.json()["joined"] == leader
    # The same key without dedupe is another request.
    assert post(p, keys["acme"], gate.input, extra_headers=key).status_code == 409
    gate.open()
    assert finished(p, keys["acme"], first.json()["id"])["status"] == "succeeded"
    assert gate.run_count() == 1


def test_a_cached_result_answers_before_a_join(site, tmp_path):
    p, keys = site
    gate = Gate(tmp_path)
    gate.open()
    first = post(p, keys["acme"], gate.input, dedupe=True, cache_ttl_s=60).json()
    assert finished(p, keys["acme"], first["id"])["status"] == "succeeded"
    again = post(p, keys["acme"], gate.input, dedupe=True, cache_ttl_s=60)
    assert again.status_code == 200 and again.json()["cached"] is True and again.json()["id"] == first["id"]
    assert gate.run_count() == 1


def test_a_schedules_ticks_join_its_job_still_running(site, tmp_path):
    p, keys = site
    gate = Gate(tmp_path)
    made = p.http.post("/v1/schedules", headers=keys["acme"], json={
        "cron": "* * * * * *", "job": {"type": "gated", "input": gate.input, "options": {"dedupe": True}}})
    assert made.status_code == 201, made.text
    schedule = made.json()["id"]
    until(lambda: p.http.get(f"/v1/schedules/{schedule}", headers=keys["acme"]).json()["fired"] >= 3,
          "the schedule to fire 3 times")
    assert p.http.delete(f"/v1/schedules/{schedule}", headers=keys["acme"]).status_code == 200
    listed = p.http.get("/v1/jobs", params={"limit": 1000}, headers=keys["acme"]).json()["jobs"]
    fired = sorted((j for j in listed if j.get("schedule_id") == schedule), key=lambda j: j["schedule_tick"])
    assert len(fired) >= 3, fired
    # The first tick's job runs; every later tick fired while it ran joins it.
    leader = fired[0]["id"]
    assert "joined" not in fired[0] and all(j["joined"] == leader for j in fired[1:]), fired
    assert p.http.get(f"/v1/schedules/{schedule}", headers=keys["acme"]).status_code == 404
    gate.open()
    for j in fired:
        done = finished(p, keys["acme"], j["id"])
        assert done["status"] == "succeeded" and done["result"] == {"text": "c0 c1 end"}, done
    assert gate.run_count() == 1, "the handler ran once for every tick"


@pytest.mark.parametrize("value", ["yes", 1, 0, None, [], {}])
def test_a_dedupe_that_is_not_a_bool_is_refused(site, value):
    p, keys = site
    response = post(p, keys["acme"], {"n": 1}, job_type="echo", dedupe=value)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {"code": "invalid_request", "message": "options.dedupe must be true or false"}


@pytest.mark.parametrize("timing", ["delay_s", "run_at"])
def test_dedupe_is_for_jobs_due_now(site, timing):
    p, keys = site
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    timing = {"delay_s": 30} if timing == "delay_s" else {"run_at": later.strftime("%Y-%m-%dT%H:%M:%SZ")}
    response = post(p, keys["acme"], {"n": 1}, job_type="echo", dedupe=True, **timing)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "options.dedupe" in response.json()["error"]["message"]
