"""GET /v1/ws with SLUICE_AUTH=required: the upgrade needs an API key (401 without), a member
key's connection sees only its tenant's jobs (another tenant's looks exactly like a missing one,
to subscribe and to cancel), a read token opens its one job and cancels nothing, a browser page
from an origin not listed cannot open a WebSocket at all (no preflight protects it), and every
message counts against the key's request limit."""
import json

import pytest
from websockets.exceptions import InvalidStatus

from pipeline import running_pipeline

ADMIN_KEY = "c" * 40
ALLOWED_ORIGIN = "http://allowed.example"
MISSING = "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10"


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required, no workers (echo jobs stay queued), member keys of tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_API_CORS_ORIGINS": ALLOWED_ORIGIN}
    with running_pipeline(tmp_path_factory.mktemp("ws-auth"), lambda: request.session.testsfailed, env=env,
                          SLUICE_KNOWN_TYPES="echo") as p:
        keys = p.member_keys(ADMIN_KEY, "acme", "beta")
        yield p, keys


def submit(p, headers) -> dict:
    response = p.http.post("/v1/jobs", json={"type": "echo", "input": {}}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def ask(conn, **message) -> dict:
    conn.send(json.dumps(message))
    return json.loads(conn.recv(timeout=10))


def refused_status(p, query: str = "", **options) -> int:
    with pytest.raises(InvalidStatus) as refused:
        with p.websocket(query, **options):
            pass
    return refused.value.response.status_code


def test_the_upgrade_needs_a_key(site):
    p, _ = site
    assert refused_status(p) == 401
    assert refused_status(p, additional_headers={"Authorization": "Bearer sk_0123456789abcdef_" + "0" * 64}) == 401


def test_a_member_sees_only_its_tenants_jobs(site):
    p, keys = site
    mine, theirs = submit(p, keys["acme"])["id"], submit(p, keys["beta"])["id"]
    with p.websocket(additional_headers=keys["acme"]) as conn:
        assert ask(conn, op="subscribe", job_id=mine) == {"op": "subscribed", "job_id": mine}
        assert json.loads(conn.recv(timeout=10))["event"] == "queued"
        # Another tenant's job answers as a missing one does, word for word but for the id.
        other = ask(conn, op="subscribe", job_id=theirs)
        missing = ask(conn, op="subscribe", job_id=MISSING)
        assert other == {**missing, "job_id": theirs, "message": missing["message"].replace(MISSING, theirs)}
        assert other["code"] == "job_not_found"
        assert ask(conn, op="cancel", job_id=theirs)["code"] == "job_not_found"
    assert p.http.get(f"/v1/jobs/{theirs}", headers=keys["beta"]).json()["status"] == "queued"


def test_a_read_token_opens_its_job_only_and_cancels_nothing(site):
    p, keys = site
    job, other = submit(p, keys["acme"]), submit(p, keys["acme"])["id"]
    token = job["links"]["events"].split("?token=")[1]
    with p.websocket(f"job_id={job['id']}&token={token}") as conn:
        assert ask(conn, op="subscribe", job_id=job["id"])["op"] == "subscribed"
        assert json.loads(conn.recv(timeout=10))["event"] == "queued"
        assert ask(conn, op="subscribe", job_id=other)["code"] == "job_not_found"
        assert ask(conn, op="cancel", job_id=job["id"])["code"] == "forbidden"
    assert p.http.get(f"/v1/jobs/{job['id']}", headers=keys["acme"]).json()["status"] == "queued"
    assert refused_status(p, f"job_id={other}&token={token}") == 401
    assert refused_status(p, f"token={token}") == 401


def test_a_page_from_an_origin_not_listed_cannot_open_a_websocket(site):
    p, keys = site
    assert refused_status(p, origin="http://evil.example", additional_headers=keys["acme"]) == 403
    with p.websocket(origin=ALLOWED_ORIGIN, additional_headers=keys["acme"]) as conn:
        assert ask(conn, op="unsubscribe", job_id=MISSING) == {"op": "unsubscribed", "job_id": MISSING}


def test_each_message_counts_against_the_keys_request_limit(site):
    p, _ = site
    made = p.http.post("/v1/admin/keys", json={"tenant": "acme", "role": "member", "name": "slow",
                                               "rate_limit": {"requests_per_s": 2}},
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    with p.websocket(additional_headers={"Authorization": f"Bearer {made['key']}"}) as conn:
        answers = [ask(conn, op="unsubscribe", job_id=MISSING) for _ in range(4)]
    # The upgrade took one of the burst of two, the first message the other.
    assert answers[0] == {"op": "unsubscribed", "job_id": MISSING}
    assert {a.get("code") for a in answers[1:]} == {"rate_limited"}
