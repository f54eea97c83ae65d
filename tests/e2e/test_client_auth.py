"""The Python client and the `sluice` command with API keys on (SLUICE_AUTH=required): a submit
past the key's rate limit answered 429 is retried after its Retry-After and makes one job;
without retries it raises RateLimited with `retry_after`; the auth errors map to their
exceptions; keys are made, listed and revoked from the client and from `sluice keys`, with
SLUICE_API_KEY from the environment."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from pipeline import running_pipeline
from sluice.client import Client, Forbidden, JobNotFound, RateLimited, RetryPolicy, Unauthenticated
from test_console import ok, sluice

ADMIN_KEY = "c" * 40


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required, submits limited to 1 a second per key (burst 1), `echo` known (no worker:
    the jobs stay queued)."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_KEY_SUBMITS_PER_S": "1"}
    with running_pipeline(tmp_path_factory.mktemp("client-auth"), lambda: request.session.testsfailed, env=env,
                          SLUICE_KNOWN_TYPES="echo") as p:
        yield p


@pytest.fixture(scope="module")
def admin(site):
    with Client(site.url, api_key=ADMIN_KEY) as c:
        yield c


def member_key(admin, tenant: str) -> str:
    return admin.create_key(tenant, "member", f"{tenant} app")["key"]


def test_a_rate_limited_submit_is_retried_after_retry_after_and_makes_one_job(site, admin):
    sent: list[tuple[float, int, str | None, str]] = []

    def record(response: httpx.Response) -> None:
        if response.request.method == "POST":
            sent.append((time.monotonic(), response.status_code, response.headers.get("retry-after"),
                         response.request.headers["idempotency-key"]))

    http = httpx.Client(base_url=site.url, timeout=30, event_hooks={"response": [record]},
                        headers={"Authorization": f"Bearer {member_key(admin, 'acme')}"})
    with Client(http=http, retry_policy=RetryPolicy(max_retries=10, backoff_s=0.05)) as client:
        ids = [client.submit("echo", {"i": i}).id for i in range(4)]
        listed = [job.id for job in client.list_jobs()]
    limited = [i for i, (_, status, _, _) in enumerate(sent) if status == 429]
    assert limited, "a 1/s limit lets four submits in a row through"
    for i in limited:
        at, _, retry_after, key = sent[i]
        following = sent[i + 1]
        assert following[3] == key                            # the retry is the same submit
        assert following[0] - at >= float(retry_after) * 0.99  # and waited what the api asked
    assert sorted(listed) == sorted(ids) and len(set(ids)) == 4  # one job per submit


def test_without_retries_the_429_is_raised_as_rate_limited(site, admin):
    with Client(site.url, api_key=member_key(admin, "beta"), retry_policy=RetryPolicy(max_retries=0)) as client:
        client.submit("echo", 1)
        with pytest.raises(RateLimited) as caught:
            client.submit("echo", 2)
    assert caught.value.status == 429 and caught.value.code == "rate_limited"
    assert caught.value.retry_after >= 1


def test_auth_errors_map_to_their_exceptions(site, admin):
    with Client(site.url) as anonymous, pytest.raises(Unauthenticated) as caught:
        anonymous.get("0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10")
    assert caught.value.status == 401
    with Client(site.url, api_key="sk_0123456789abcdef_" + "0" * 64) as wrong, pytest.raises(Unauthenticated):
        list(wrong.list_jobs())
    with Client(site.url, api_key=member_key(admin, "gamma")) as gamma, \
            Client(site.url, api_key=member_key(admin, "delta")) as delta:
        with pytest.raises(Forbidden):
            gamma.list_keys()
        job = gamma.submit("echo", {"mine": True})
        with pytest.raises(JobNotFound):
            delta.get(job.id)              # another tenant's job does not exist for it
        with pytest.raises(JobNotFound):
            delta.cancel(job.id)


def test_keys_from_the_client(site, admin):
    made = admin.create_key("epsilon", "member", "epsilon app", rate_limit={"submits_per_s": 50})
    assert made["key"].startswith("sk_") and made["rate_limit"]["submits_per_s"] == 50
    assert made["id"] in [k["id"] for k in admin.list_keys()]
    assert admin.revoke_key(made["id"]) == {"id": made["id"], "revoked": True}
    with Client(site.url, api_key=made["key"], retry_policy=RetryPolicy(max_retries=0)) as revoked:
        deadline = time.monotonic() + 10
        while True:
            try:
                list(revoked.list_jobs(limit=1))
            except Unauthenticated:
                break
            assert time.monotonic() < deadline, "a revoked key kept working"
            time.sleep(0.2)


def test_keys_from_the_command_line(site):
    as_admin = {"SLUICE_API_KEY": ADMIN_KEY}
    made = json.loads(ok(sluice(site, "keys", "create", "--tenant", "zeta", "--name", "zeta cli",
                                "--submits-per-s", "5", "--json", env=as_admin)))
    assert made["tenant"] == "zeta" and made["role"] == "member" and made["rate_limit"]["submits_per_s"] == 5
    assert made["id"] in [k["id"] for k in json.loads(ok(sluice(site, "keys", "list", "--json", env=as_admin)))]
    assert "zeta cli" in ok(sluice(site, "keys", "list", env=as_admin))
    plain = sluice(site, "keys", "create", "--tenant", "eta", env=as_admin)
    assert ok(plain).strip().startswith("sk_") and "shown this once" in plain.stderr
    assert ok(sluice(site, "keys", "revoke", made["id"], env=as_admin)).strip() == f"revoked {made['id']}"
    again = sluice(site, "keys", "revoke", made["id"], env=as_admin)
    assert again.returncode == 1 and "key_not_found (404)" in again.stderr
    # The member key of the new tenant, from the environment: its own jobs; no keys.
    member = {"SLUICE_API_KEY": plain.stdout.strip()}
    job = json.loads(ok(sluice(site, "submit", "echo", "--input", "{}", "--json", env=member)))
    assert [j["id"] for j in json.loads(ok(sluice(site, "jobs", "--json", env=member)))] == [job["id"]]
    forbidden = sluice(site, "keys", "list", env=member)
    assert forbidden.returncode == 1 and "forbidden (403)" in forbidden.stderr
    anonymous = sluice(site, "jobs")
    assert anonymous.returncode == 1 and "unauthenticated (401)" in anonymous.stderr
