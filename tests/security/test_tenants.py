"""API keys and tenants over real HTTP (SLUICE_AUTH=required): every route but health needs a key,
a member key sees only its tenant's jobs (another tenant's job is 404 on every route, never
403), key management is for admins, a revoked key stops working within a second, a read token
opens its own job's events and result and nothing else, and browsers from origins not listed
can change nothing."""
import os
import subprocess
import time

import httpx
import pytest

from pipeline import BUILD, running_pipeline

ADMIN_KEY = "a" * 40
ALLOWED_ORIGIN = "http://allowed.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required, one Python worker (echo, fail), two member keys: tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_API_CORS_ORIGINS": ALLOWED_ORIGIN}
    with running_pipeline(tmp_path_factory.mktemp("tenants"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("python")
        p.wait_ready("fail")
        p.wait_ready("echo")
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        keys = {}
        for tenant in ("acme", "beta"):
            made = p.http.post("/v1/admin/keys", json={"tenant": tenant, "role": "member", "name": f"{tenant} app"},
                               headers=admin)
            assert made.status_code == 201, made.text
            keys[tenant] = made.json()
        yield p, admin, keys


def as_(key: dict) -> dict:
    return {"Authorization": f"Bearer {key['key']}"}


def submit(p, headers, job_type="echo", input_=None, **options) -> dict:
    body = {"type": job_type, "input": input_ or {"n": 1}}
    if options:
        body["options"] = options
    response = p.http.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def code(response) -> str:
    return response.json()["error"]["code"]


def test_every_route_but_health_needs_a_key(site):
    p, _, _ = site
    for method, path in [("POST", "/v1/jobs"), ("GET", "/v1/jobs/0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10"),
                         ("DELETE", "/v1/jobs/0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10"),
                         ("GET", "/v1/jobs/0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10/result"),
                         ("GET", "/v1/jobs/0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10/events"),
                         ("POST", "/v1/jobs/0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10/retry"), ("GET", "/v1/dead"),
                         ("GET", "/v1/workers"), ("GET", "/v1/types"), ("GET", "/v1/jobs"),
                         ("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"), ("DELETE", "/v1/admin/keys/x"),
                         ("GET", "/metrics")]:
        response = p.http.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)
        assert code(response) == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert p.http.get("/healthz").status_code == 200
    assert p.http.get("/readyz").status_code == 200


@pytest.mark.parametrize("authorization", ["Bearer nonsense", "Bearer sk_0123456789abcdef_" + "0" * 64,
                                           "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "bearer " + "b" * 40])
def test_wrong_keys_are_401(site, authorization):
    p, _, _ = site
    response = p.http.get("/v1/dead", headers={"Authorization": authorization})
    assert response.status_code == 401 and code(response) == "unauthenticated"


def test_a_key_is_shown_once_and_listed_without_secrets(site):
    p, admin, keys = site
    made = keys["acme"]
    assert made["key"].startswith("sk_" + made["id"] + "_")
    assert set(made) == {"id", "key", "tenant", "role", "name", "created_at", "rate_limit"}
    listed = p.http.get("/v1/admin/keys", headers=admin).json()["keys"]
    mine = [k for k in listed if k["id"] == made["id"]]
    assert mine == [{"id": made["id"], "tenant": "acme", "role": "member", "name": "acme app",
                     "created_at": made["created_at"], "rate_limit": {"submits_per_s": 0, "requests_per_s": 0}}]
    with p.redis_admin() as redis:
        stored = redis.call("HGETALL", f"sluice:apikey:{made['id']}")
    assert made["key"].encode() not in stored  # only its hash


def test_member_keys_cannot_manage_keys(site):
    p, _, keys = site
    for method, path in [("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"),
                         ("DELETE", f"/v1/admin/keys/{keys['beta']['id']}"), ("GET", "/metrics")]:
        response = p.http.request(method, path, headers=as_(keys["acme"]),
                                  json={"tenant": "acme", "role": "admin", "name": "x"} if method == "POST" else None)
        assert response.status_code == 403 and code(response) == "forbidden", (method, path)


@pytest.mark.parametrize("body, message", [
    ({"tenant": "acme", "role": "owner", "name": "x"}, "role must be 'admin' or 'member'"),
    ({"tenant": "a:b", "role": "member", "name": "x"}, "tenant must match"),
    ({"tenant": "acme", "role": "member"}, "name is required"),
    ({"tenant": "acme", "role": "member", "name": "x" * 129}, "name must be 1..128 bytes"),
    ({"tenant": "acme", "role": "member", "name": {"x": 1}}, "name must be a string"),
])
def test_bad_key_requests_are_422_and_make_nothing(site, body, message):
    p, admin, _ = site
    before = len(p.http.get("/v1/admin/keys", headers=admin).json()["keys"])
    response = p.http.post("/v1/admin/keys", json=body, headers=admin)
    assert response.status_code == 422 and message in response.json()["error"]["message"], response.text
    assert len(p.http.get("/v1/admin/keys", headers=admin).json()["keys"]) == before
    assert p.http.post("/v1/admin/keys", content=b"[" * 5000, headers={**admin, "Content-Type": "application/json"}
                       ).status_code == 422


def test_a_member_sees_only_its_tenants_jobs_on_every_route(site):
    p, admin, keys = site
    acme, beta = as_(keys["acme"]), as_(keys["beta"])
    job = submit(p, acme)
    result = p.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 10}, headers=acme)
    assert result.status_code == 200 and result.json()["tenant"] == "acme"
    assert result.json()["key_id"] == keys["acme"]["id"]
    dead = submit(p, acme, "fail", {"message": "no", "retryable": False}, max_attempts=1)
    assert p.http.get(f"/v1/jobs/{dead['id']}/result", params={"wait": 10}, headers=acme).json()["status"] == "failed"

    for other in (job["id"], dead["id"]):
        for method, suffix in [("GET", ""), ("GET", "/result"), ("GET", "/events"), ("DELETE", ""),
                               ("POST", "/retry")]:
            response = p.http.request(method, f"/v1/jobs/{other}{suffix}", headers=beta)
            assert response.status_code == 404 and code(response) == "job_not_found", (method, suffix, response.text)
    assert dead["id"] not in [j["id"] for j in p.http.get("/v1/dead", headers=beta).json()["jobs"]]
    assert dead["id"] in [j["id"] for j in p.http.get("/v1/dead", headers=acme).json()["jobs"]]
    assert job["id"] not in [j["id"] for j in p.http.get("/v1/jobs", headers=beta).json()["jobs"]]
    assert job["id"] in [j["id"] for j in p.http.get("/v1/jobs", headers=acme).json()["jobs"]]
    assert code(p.http.get("/v1/jobs", params={"tenant": "acme"}, headers=beta)) == "invalid_request"
    assert job["id"] in [j["id"] for j in p.http.get("/v1/jobs", params={"tenant": "acme"}, headers=admin).json()["jobs"]]
    # An admin sees every tenant's.
    assert p.http.get(f"/v1/jobs/{job['id']}", headers=admin).status_code == 200
    assert dead["id"] in [j["id"] for j in p.http.get("/v1/dead", headers=admin).json()["jobs"]]
    # The owner can still act on its own.
    assert p.http.post(f"/v1/jobs/{dead['id']}/retry", headers=acme).status_code == 200


def test_a_read_token_opens_its_job_and_nothing_else(site):
    p, _, keys = site
    acme = as_(keys["acme"])
    job = submit(p, acme)
    other = submit(p, acme)
    events_link, result_link = job["links"]["events"], job["links"]["result"]
    token = events_link.split("?token=")[1]
    result = p.http.get(result_link + "&wait=10")
    assert result.status_code == 200 and result.json()["status"] == "succeeded"
    events = p.http.get(events_link, timeout=10)
    assert events.status_code == 200 and "event: succeeded" in events.text
    for path in [f"/v1/jobs/{other['id']}/result", f"/v1/jobs/{other['id']}/events", f"/v1/jobs/{job['id']}",
                 f"/v1/jobs/{job['id']}/retry", "/v1/dead"]:
        method = "POST" if path.endswith("retry") else "GET"
        response = p.http.request(method, path, params={"token": token})
        assert response.status_code == 401, (path, response.text)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert p.http.get(f"/v1/jobs/{job['id']}/result", params={"token": tampered}).status_code == 401
    expired = "1." + token.split(".")[1]
    assert p.http.get(f"/v1/jobs/{job['id']}/result", params={"token": expired}).status_code == 401


def test_a_revoked_key_stops_working_within_a_second(site):
    p, admin, _ = site
    made = p.http.post("/v1/admin/keys", json={"tenant": "gamma", "role": "member", "name": "short-lived"},
                       headers=admin).json()
    headers = as_(made)
    assert p.http.get("/v1/dead", headers=headers).status_code == 200
    assert p.http.delete(f"/v1/admin/keys/{made['id']}", headers=admin).status_code == 200
    assert p.http.delete(f"/v1/admin/keys/{made['id']}", headers=admin).status_code == 404
    revoked_at = time.monotonic()
    while p.http.get("/v1/dead", headers=headers).status_code == 200:
        assert time.monotonic() - revoked_at < 1.5
        time.sleep(0.05)
    assert code(p.http.get("/v1/dead", headers=headers)) == "unauthenticated"


def test_browsers_from_other_origins_change_nothing(site):
    p, _, keys = site
    acme = as_(keys["acme"])
    preflight = p.http.options("/v1/jobs", headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
                                                    "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    refused = p.http.options("/v1/jobs", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers

    allowed = p.http.post("/v1/jobs", json={"type": "echo", "input": 1}, headers={**acme, "Origin": ALLOWED_ORIGIN})
    assert allowed.status_code == 202 and allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    foreign = p.http.post("/v1/jobs", json={"type": "echo", "input": 1}, headers={**acme, "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and code(foreign) == "origin_not_allowed"
    # The cross-site "simple request": a form or text/plain POST, which needs no preflight.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = p.http.post("/v1/jobs", content=b'{"type": "echo", "input": 1}',
                               headers={**acme, "Content-Type": content_type})
        assert response.status_code == 415 and code(response) == "unsupported_media_type", content_type
    assert p.http.post("/v1/jobs", content=b'{"type": "echo", "input": 1}',
                       headers={**acme, "Content-Type": "Application/JSON; charset=utf-8"}).status_code == 202


def test_auth_off_is_refused_on_a_non_loopback_address_unless_asked_for():
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_AUTH"}
    done = subprocess.run([str(BUILD / "api" / "sluice-api")], env={**env, "SLUICE_API_HOST": "0.0.0.0"},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "SLUICE_AUTH is unset, and SLUICE_API_HOST 0.0.0.0 is not a loopback address" in done.stderr
    done = subprocess.run([str(BUILD / "api" / "sluice-api")], env={**env, "SLUICE_AUTH": "maybe"},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "SLUICE_AUTH must be 'required' or 'off', got 'maybe'" in done.stderr
    done = subprocess.run([str(BUILD / "api" / "sluice-api")], env={**env, "SLUICE_ADMIN_KEY": "short"},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "SLUICE_ADMIN_KEY must be at least 32 characters" in done.stderr


def test_rate_limits_per_key_answer_429_with_the_ratelimit_headers(site):
    p, admin, _ = site
    made = p.http.post("/v1/admin/keys", headers=admin, json={
        "tenant": "acme", "role": "member", "name": "limited", "rate_limit": {"submits_per_s": 3, "requests_per_s": 50}})
    assert made.status_code == 201 and made.json()["rate_limit"] == {"submits_per_s": 3, "requests_per_s": 50}
    headers = as_(made.json())
    statuses = [p.http.post("/v1/jobs", json={"type": "echo", "input": 1}, headers=headers) for _ in range(6)]
    assert [r.status_code for r in statuses[:3]] == [202, 202, 202]
    refused = statuses[-1]
    assert refused.status_code == 429 and code(refused) == "rate_limited"
    assert "3 submits a second" in refused.json()["error"]["message"]
    assert refused.headers["RateLimit-Limit"] == "3" and refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1 and int(refused.headers["RateLimit-Reset"]) >= 1

    # Requests: a burst of one second's worth, then 429 on any route but health.
    answers = [p.http.get("/v1/dead", headers=headers) for _ in range(80)]
    statuses = [answer.status_code for answer in answers]
    assert 429 in statuses and statuses[:40].count(200) >= 40, statuses
    # The first refusal's headers (the bucket refills at 50 a second, so a request sent after a
    # slow loop may pass again).
    limited = answers[statuses.index(429)]
    assert limited.headers["RateLimit-Limit"] == "50" and code(limited) == "rate_limited"
    assert p.http.get("/healthz").status_code == 200
    time.sleep(1.1)
    assert p.http.get("/v1/dead", headers=headers).status_code == 200


def test_the_submit_limit_holds_across_api_instances(site):
    p, admin, _ = site
    made = p.http.post("/v1/admin/keys", headers=admin, json={
        "tenant": "acme", "role": "member", "name": "two doors", "rate_limit": {"submits_per_s": 4}}).json()
    other = httpx.Client(base_url=p.url, timeout=30)
    first_url = p.url
    p.start_api(SLUICE_AUTH="required", SLUICE_ADMIN_KEY=ADMIN_KEY)
    second = p.http
    p.http, p.url = other, first_url
    try:
        accepted = 0
        for client in (other, second) * 4:
            response = client.post("/v1/jobs", json={"type": "echo", "input": 1}, headers=as_(made))
            assert response.status_code in (202, 429), response.text
            accepted += response.status_code == 202
        assert accepted <= 5  # the burst of 4, and at most one more second's refill
    finally:
        second.close()


@pytest.mark.parametrize("limit, message", [
    ({"submits_per_s": -1}, "rate_limit.submits_per_s must be an integer in 0..1000000"),
    ({"requests_per_s": 1.5}, "rate_limit.requests_per_s must be an integer in 0..1000000"),
    ({"requests_per_s": 10**7}, "rate_limit.requests_per_s must be an integer in 0..1000000"),
    ({"per_minute": 5}, "rate_limit.per_minute is not a limit"),
    ([5], "rate_limit must be an object"),
])
def test_bad_rate_limits_are_422(site, limit, message):
    p, admin, _ = site
    response = p.http.post("/v1/admin/keys", headers=admin,
                           json={"tenant": "acme", "role": "member", "name": "x", "rate_limit": limit})
    assert response.status_code == 422 and message in response.json()["error"]["message"], response.text


def test_types_are_global_and_any_key_reads_them(site):
    p, admin, keys = site
    for headers in (admin, as_(keys["acme"]), as_(keys["beta"])):
        response = p.http.get("/v1/types", headers=headers)
        assert response.status_code == 200, response.text
        types = {t["name"]: t for t in response.json()["types"]}
        assert types["echo"]["schema"] is None and types["sleep"]["checked"] is True
