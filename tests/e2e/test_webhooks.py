"""Webhooks end to end (README.md, "Webhooks"): a real receiver on a free port gets signed
deliveries from a real deliverer (python -m sluice.webhooks) for a job's own webhook and for a
tenant's default endpoint; a failing receiver is retried and every attempt shows at
GET /v1/jobs/{id}/webhooks; a deliverer killed mid-backlog loses nothing once another runs; a
receiver that hangs holds up nobody else."""
import json
import signal

import pytest
from sluice import webhooks

from pipeline import running_pipeline
from webhook_receiver import Receiver, attempts

# Loopback is where the test receivers listen: allowed here, refused by default.
ALLOW = {"SLUICE_WEBHOOK_ALLOW_NETS": "127.0.0.0/8"}
# Quick retries and a quick take-over of a dead deliverer's entries, so the tests wait seconds.
DELIVERER = {**ALLOW, "SLUICE_WEBHOOK_RETRY_BASE_MS": "200", "SLUICE_WEBHOOK_TIMEOUT_MS": "2000",
             "SLUICE_WEBHOOK_CLAIM_IDLE_MS": "3500"}


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    with running_pipeline(tmp_path_factory.mktemp("webhooks"), lambda: request.session.testsfailed, env=ALLOW) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        receiver = Receiver()
        p.deliverer = p.start_webhooks(**DELIVERER)
        try:
            yield p, receiver
        finally:
            receiver.close()


def submit(p, url: str, events=None, input_=None) -> str:
    hook = {"url": url} if events is None else {"url": url, "events": events}
    response = p.http.post("/v1/jobs", json={"type": "echo", "input": input_ or {"n": 1}, "options": {"webhook": hook}})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_job_webhook_and_tenant_endpoint_both_get_a_signed_delivery(site):
    p, receiver = site
    made = p.http.post("/v1/webhooks", json={"url": f"{receiver.url}/ok/endpoint", "events": ["succeeded"]})
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["succeeded"]
    try:
        job_secret = p.http.get("/v1/webhooks/secret").json()["secret"]
        job_id = submit(p, f"{receiver.url}/ok/job/signed", input_={"hello": "hook"})
        (_, headers, body), = receiver.wait("/ok/job/signed")
        assert webhooks.verify(job_secret, headers, body)
        assert not webhooks.verify(endpoint["secret"], headers, body)
        sent = json.loads(body)
        assert sent["type"] == "job.succeeded"
        assert sent["data"]["id"] == job_id and sent["data"]["status"] == "succeeded"
        assert sent["data"]["result"] == {"hello": "hook"}
        for_endpoint = [r for r in receiver.wait("/ok/endpoint") if json.loads(r[2])["data"]["id"] == job_id]
        assert len(for_endpoint) == 1
        _, headers, body = for_endpoint[0]
        assert webhooks.verify(endpoint["secret"], headers, body)
        assert json.loads(body)["type"] == "job.succeeded"
        shown = attempts(p, job_id, 2)
        assert sorted(a["target"] for a in shown) == sorted(["job", endpoint["id"]])
        assert all(a["outcome"] == "delivered" and a["status"] == 200 and a["attempt"] == 1 for a in shown)
        view = p.http.get(f"/v1/jobs/{job_id}/webhooks").json()
        assert view["webhook"] == {"url": f"{receiver.url}/ok/job/signed", "events": ["succeeded", "failed", "canceled"]}
        listed = p.http.get("/v1/webhooks").json()["webhooks"]
        assert [w["id"] for w in listed] == [endpoint["id"]] and "secret" not in listed[0]
    finally:
        assert p.http.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 200
    assert p.http.get("/v1/webhooks").json()["webhooks"] == []


def test_a_rotated_secret_signs_what_follows(site):
    p, receiver = site
    rotated = p.http.post("/v1/webhooks/secret")
    assert rotated.status_code == 200
    secret = rotated.json()["secret"]
    assert p.http.get("/v1/webhooks/secret").json()["secret"] == secret
    submit(p, f"{receiver.url}/ok/rotated")
    (_, headers, body), = receiver.wait("/ok/rotated")
    assert webhooks.verify(secret, headers, body)


def test_each_event_asked_for_comes_once(site):
    p, receiver = site
    job_id = submit(p, f"{receiver.url}/ok/all", events=["queued", "started", "succeeded"])
    got = receiver.wait("/ok/all", 3)
    # Deliveries run side by side, so they may arrive in any order (README.md says so).
    assert sorted(json.loads(b)["type"] for _, _, b in got) == ["job.queued", "job.started", "job.succeeded"]
    assert len({h["webhook-id"] for _, h, _ in got}) == 3
    assert all(json.loads(b)["data"]["id"] == job_id for _, _, b in got)


def test_a_failing_receiver_is_retried_and_every_attempt_is_shown(site):
    p, receiver = site
    job_id = submit(p, f"{receiver.url}/flaky/1/retried")
    first, second = receiver.wait("/flaky/1/retried", 2)
    assert first[1]["webhook-id"] == second[1]["webhook-id"]  # the same message, for the receiver's dedup
    assert first[2] == second[2]
    shown = attempts(p, job_id, 2)
    assert [(a["attempt"], a["status"], a["outcome"]) for a in shown] == [(1, 500, "retrying"), (2, 200, "delivered")]


def test_a_redirect_is_not_followed(site):
    p, receiver = site
    job_id = submit(p, f"{receiver.url}/redirect/once")
    receiver.wait("/redirect/once")
    shown = attempts(p, job_id, 1)
    assert shown[0]["status"] == 302 and shown[0]["outcome"] == "retrying"
    assert not [r for r in receiver.requests if r[0] == "/ok/redirected"]


def test_a_hanging_receiver_delays_no_other(site):
    p, receiver = site
    for n in range(12):  # more than the deliverer's requests per host
        submit(p, f"{receiver.url}/hang/{n}")
    receiver.wait("/hang/", 8)
    job_id = submit(p, f"{receiver.url}/ok/beside-hang")
    receiver.wait("/ok/beside-hang", timeout=10)  # well before any hanging request ends (HANG_S)
    assert attempts(p, job_id, 1)[0]["outcome"] == "delivered"


def test_a_killed_deliverer_loses_nothing(site):
    p, receiver = site
    p.deliverer.send_signal(signal.SIGKILL)
    p.deliverer.wait()
    ids = [submit(p, f"{receiver.url}/ok/backlog/{n}") for n in range(30)]
    p.wait_finished(ids)
    # What a deliverer leaves when it dies after reading its batch: the entries pending for it.
    with p.redis_client() as redis:
        read = redis.call("XREADGROUP", "GROUP", "deliverers", "doomed", "COUNT", "20", "STREAMS", "sluice:webhooks", ">")
        assert len(read[0][1]) == 20
    p.deliverer = p.start_webhooks(**DELIVERER)
    got = receiver.wait("/ok/backlog/", 30, timeout=60)
    assert {path.rsplit("/", 1)[1] for path, _, _ in got} == {str(n) for n in range(30)}
    for job_id in ids:
        assert attempts(p, job_id, 1)[-1]["outcome"] == "delivered"
    with p.redis_admin() as redis:
        assert redis.call("XPENDING", "sluice:webhooks", "deliverers")[0] == 0
