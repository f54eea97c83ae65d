"""Webhooks as an attack surface (README.md, "Webhooks"), over real HTTP with API keys: no
webhook reaches the operator's network (a literal loopback, private or link-local address is
422 at submit; a name that resolves to one, `localhost`, is refused at delivery, and nothing
reaches the receiver); hostile webhook input gets 422 with a stable code; a tenant sees and
changes only its own endpoints, secrets and delivery attempts (another tenant's job is 404)."""
import json
import time

import pytest

from pipeline import running_pipeline
from webhook_receiver import Receiver, attempts

ADMIN_KEY = "b" * 40


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required, SLUICE_WEBHOOK_ALLOW_NETS unset (the default: nothing non-public), a native
    worker, a deliverer, a receiver on loopback, member keys of tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY}
    with running_pipeline(tmp_path_factory.mktemp("webhooks"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        p.start_webhooks()
        receiver = Receiver()
        keys = p.member_keys(ADMIN_KEY, "acme", "beta")
        try:
            yield p, receiver, keys
        finally:
            receiver.close()


def submit(p, headers, webhook) -> "httpx.Response":  # noqa: F821 - httpx's, through p.http
    return p.http.post("/v1/jobs", json={"type": "echo", "input": 1, "options": {"webhook": webhook}}, headers=headers)


def code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://127.0.0.2:8080/x", "http://10.0.0.1/",
                                 "http://192.168.1.1/", "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://0.0.0.0/",
                                 "http://100.64.0.1/", "http://[fd00::1]/"])
def test_a_literal_non_public_address_is_refused_at_submit(site, url):
    p, _, keys = site
    for response in (submit(p, keys["acme"], {"url": url}), p.http.post("/v1/webhooks", json={"url": url},
                                                                       headers=keys["acme"])):
        assert response.status_code == 422, response.text
        assert code(response) == "webhook_target_refused"


@pytest.mark.parametrize("webhook, expected", [
    ({"url": "https://hooks.example.com/" + "a" * 2030}, "invalid_webhook_url"),
    ({"url": "ftp://hooks.example.com/"}, "invalid_webhook_url"),
    ({"url": "file:///etc/passwd"}, "invalid_webhook_url"),
    ({"url": "javascript:alert(1)"}, "invalid_webhook_url"),
    ({"url": "http://user:secret@hooks.example.com/"}, "invalid_webhook_url"),
    ({"url": "http://hooks.example.com:99999/"}, "invalid_webhook_url"),
    ({"url": "http://2130706433/"}, "invalid_webhook_url"),
    ({"url": "http://hooks.example.com/\r\nX-Injected: 1"}, "invalid_webhook_url"),
    ({"url": 42}, "invalid_webhook_url"),
    ({"events": ["succeeded"]}, "invalid_webhook_url"),
    ({"url": "https://hooks.example.com/", "events": "succeeded"}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "events": {"succeeded": True}}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "events": []}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "events": ["chunk"]}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "events": ["succeeded", "succeeded"]}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "events": ["queued"] * 10_000}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "events": [None]}, "invalid_webhook_events"),
    ({"url": "https://hooks.example.com/", "secret": "whsec_mine"}, "invalid_request"),
    ("https://hooks.example.com/", "invalid_request"),
])
def test_hostile_webhook_input_gets_a_stable_code(site, webhook, expected):
    p, _, keys = site
    huge = submit(p, keys["acme"], {"url": "https://hooks.example.com/" + "a" * 100_000})
    assert huge.status_code == 422 and code(huge) == "invalid_webhook_url"
    responses = [submit(p, keys["acme"], webhook)]
    endpoint = p.http.post("/v1/webhooks", json=webhook, headers=keys["acme"])
    if len(json.dumps(webhook)) > 3072:  # past an endpoint request's bound in bytes
        assert endpoint.status_code == 413 and code(endpoint) == "body_too_large"
    elif not isinstance(webhook, dict):  # as a body, not an object at all
        assert endpoint.status_code == 400 and code(endpoint) == "invalid_json"
    else:
        responses.append(endpoint)
    for response in responses:
        assert response.status_code == 422, response.text
        assert code(response) == expected, response.text


def test_an_endpoint_request_is_bounded_in_bytes(site):
    p, _, keys = site
    for body in ({"url": "https://hooks.example.com/", "pad": "x" * 5000},
                 {"url": "https://hooks.example.com/" + "a" * 100_000}):
        response = p.http.post("/v1/webhooks", json=body, headers=keys["acme"])
        assert response.status_code == 413 and code(response) == "body_too_large"


def test_a_name_resolving_to_loopback_is_refused_at_delivery(site):
    p, receiver, keys = site
    response = submit(p, keys["acme"], {"url": f"http://localhost:{receiver.port}/ok/rebound"})
    assert response.status_code == 202, response.text  # a name is checked when it is resolved
    job_id = response.json()["id"]
    made = p.http.post("/v1/webhooks", json={"url": f"http://localhost:{receiver.port}/ok/endpoint"},
                       headers=keys["acme"])
    assert made.status_code == 201, made.text
    try:
        response = submit(p, keys["acme"], {"url": f"http://localhost:{receiver.port}/ok/rebound"})
        second = response.json()["id"]
        shown = attempts(p, second, 2, keys["acme"])
        assert len(shown) == 2 and all(a["outcome"] == "refused" and a["status"] is None for a in shown), shown
        assert "localhost" in shown[0]["error"]
        assert attempts(p, job_id, 2, keys["acme"])[0]["outcome"] == "refused"
        time.sleep(1)  # nothing retries a refused delivery: no attempt comes later either
        assert len(attempts(p, second, 1, keys["acme"])) == 2
        assert receiver.requests == []
    finally:
        p.http.delete(f"/v1/webhooks/{made.json()['id']}", headers=keys["acme"])


def test_tenants_see_only_their_own_webhooks(site):
    p, _, keys = site
    response = submit(p, keys["acme"], {"url": "https://hooks.example.com/acme"})
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert p.http.get(f"/v1/jobs/{job_id}/webhooks", headers=keys["acme"]).status_code == 200
    other = p.http.get(f"/v1/jobs/{job_id}/webhooks", headers=keys["beta"])
    assert other.status_code == 404 and code(other) == "job_not_found"
    missing = p.http.get("/v1/jobs/0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10/webhooks", headers=keys["acme"])
    assert missing.status_code == 404 and code(missing) == "job_not_found"
    assert p.http.get(f"/v1/jobs/{job_id}/webhooks").status_code == 401

    made = p.http.post("/v1/webhooks", json={"url": "https://hooks.example.com/acme-endpoint"}, headers=keys["acme"])
    assert made.status_code == 201
    endpoint = made.json()
    try:
        assert p.http.get("/v1/webhooks", headers=keys["beta"]).json()["webhooks"] == []
        gone = p.http.delete(f"/v1/webhooks/{endpoint['id']}", headers=keys["beta"])
        assert gone.status_code == 404 and code(gone) == "webhook_not_found"
        assert [w["id"] for w in p.http.get("/v1/webhooks", headers=keys["acme"]).json()["webhooks"]] == [endpoint["id"]]
    finally:
        assert p.http.delete(f"/v1/webhooks/{endpoint['id']}", headers=keys["acme"]).status_code == 200
    assert code(p.http.delete("/v1/webhooks/../../x", headers=keys["acme"])) in ("webhook_not_found", "not_found")
    acme = p.http.get("/v1/webhooks/secret", headers=keys["acme"]).json()["secret"]
    beta = p.http.get("/v1/webhooks/secret", headers=keys["beta"]).json()["secret"]
    assert acme != beta and acme.startswith("whsec_")
    assert p.http.post("/v1/webhooks/secret", headers=keys["beta"]).json()["secret"] != beta
    assert p.http.get("/v1/webhooks/secret", headers=keys["acme"]).json()["secret"] == acme


def test_a_tenant_holds_at_most_ten_endpoints(site):
    p, _, keys = site
    made = []
    try:
        for n in range(10):
            response = p.http.post("/v1/webhooks", json={"url": f"https://hooks.example.com/{n}"}, headers=keys["beta"])
            assert response.status_code == 201, response.text
            made.append(response.json()["id"])
        over = p.http.post("/v1/webhooks", json={"url": "https://hooks.example.com/11"}, headers=keys["beta"])
        assert over.status_code == 422 and code(over) == "too_many_webhooks"
        assert len(p.http.get("/v1/webhooks", headers=keys["beta"]).json()["webhooks"]) == 10
    finally:
        for endpoint_id in made:
            p.http.delete(f"/v1/webhooks/{endpoint_id}", headers=keys["beta"])
