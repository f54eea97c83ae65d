"""options.cache_ttl_s (README.md, "Cached results"): a submit identical in type and input to a
job of the same tenant that succeeded within the ttl gets that job and its result at once (200,
"cached": true) and runs nothing; a failed job, another input, another type, another tenant or
no cache option runs anew. Out-of-range values are refused at the api (422); the broker's check
is in tests/security/test_broker_limits.py."""
import hashlib
import time
import uuid

import msgpack
import pytest

from pipeline import running_pipeline

ADMIN_KEY = "c" * 40


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Auth required, one Python worker (echo, fail, sentiment on the embedded model), member keys
    of tenants acme and beta."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY}
    with running_pipeline(tmp_path_factory.mktemp("cache"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("python")
        p.wait_ready("echo")
        yield p, p.member_keys(ADMIN_KEY, "acme", "beta")


def post(p, headers, job_type, input_, **options):
    body = {"type": job_type, "input": input_}
    if options:
        body["options"] = options
    return p.http.post("/v1/jobs", json=body, headers=headers)


def finished(p, headers, job_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = p.http.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.05)
    raise TimeoutError(job_id)


def tenant_jobs(p, tenant) -> int:
    with p.redis_client() as redis:
        return redis.call("ZCARD", f"sluice:jobs:{tenant}")


def test_an_identical_submit_within_the_ttl_gets_the_result_and_runs_nothing(site):
    p, keys = site
    marker = uuid.uuid4().hex
    first = post(p, keys["acme"], "echo", {"marker": marker, "b": [1, 2]}, cache_ttl_s=60)
    assert first.status_code == 202, first.text
    assert finished(p, keys["acme"], first.json()["id"])["status"] == "succeeded"
    before = tenant_jobs(p, "acme")

    # The same input with its keys in another order is the same input.
    again = post(p, keys["acme"], "echo", {"b": [1, 2], "marker": marker}, cache_ttl_s=60)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["cached"] is True and body["id"] == first.json()["id"] and body["status"] == "succeeded"
    assert body["result"] == {"marker": marker, "b": [1, 2]}
    assert "Idempotent-Replayed" not in again.headers
    assert tenant_jobs(p, "acme") == before, "a cached submit stores no job"
    result = p.http.get(body["links"]["result"]).json()
    assert result["result"] == {"marker": marker, "b": [1, 2]}


@pytest.mark.parametrize("change", ["input", "type", "tenant", "no option"])
def test_anything_else_runs_anew(site, change):
    p, keys = site
    marker = uuid.uuid4().hex
    first = post(p, keys["acme"], "echo", {"marker": marker}, cache_ttl_s=60)
    finished(p, keys["acme"], first.json()["id"])
    headers, job_type, input_, options = keys["acme"], "echo", {"marker": marker}, {"cache_ttl_s": 60}
    if change == "input":
        input_ = {"marker": marker, "more": 1}
    elif change == "type":
        job_type = "fail"
    elif change == "tenant":
        headers = keys["beta"]
    else:
        options = {}
    other = post(p, headers, job_type, input_, **options)
    assert other.status_code == 202, other.text
    assert other.json()["id"] != first.json()["id"] and "cached" not in other.json()


def test_a_failed_job_is_not_a_cached_answer(site):
    p, keys = site
    input_ = {"message": uuid.uuid4().hex}
    first = post(p, keys["acme"], "fail", input_, cache_ttl_s=60, max_attempts=1)
    assert finished(p, keys["acme"], first.json()["id"])["status"] == "failed"
    again = post(p, keys["acme"], "fail", input_, cache_ttl_s=60, max_attempts=1)
    assert again.status_code == 202 and again.json()["id"] != first.json()["id"], again.text


def test_the_cache_ends_with_its_ttl(site):
    p, keys = site
    input_ = {"marker": uuid.uuid4().hex}
    first = post(p, keys["acme"], "echo", input_, cache_ttl_s=1)
    finished(p, keys["acme"], first.json()["id"])
    # The key as PROTOCOL.md says: tenant, then the SHA-1 of type, a newline and the input as
    # msgpack (one string member: the same bytes from msgpack-python as from the api).
    key = "sluice:cache:acme:" + hashlib.sha1(b"echo\n" + msgpack.packb(input_)).hexdigest()
    with p.redis_admin() as redis:
        assert redis.call("GET", key).decode() == first.json()["id"]
        assert redis.call("TTL", key) == 1
    time.sleep(2.1)
    again = post(p, keys["acme"], "echo", input_, cache_ttl_s=1)
    assert again.status_code == 202 and again.json()["id"] != first.json()["id"], again.text


@pytest.mark.parametrize("value", [0, -1, 604801, "60", 1.5, None, True])
def test_a_bad_cache_ttl_is_refused(site, value):
    p, keys = site
    before = tenant_jobs(p, "acme")
    response = post(p, keys["acme"], "echo", {"n": 1}, cache_ttl_s=value)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "options.cache_ttl_s must be an integer between 1 and 604800" in response.json()["error"]["message"]
    assert tenant_jobs(p, "acme") == before


def test_a_cached_model_job_makes_no_second_model_call(site):
    p, keys = site
    text = f"The service was slow and the food arrived cold. ({uuid.uuid4().hex[:8]})"
    first = post(p, keys["acme"], "sentiment", {"text": text}, cache_ttl_s=600)
    assert first.status_code == 202, first.text
    job = finished(p, keys["acme"], first.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    before = tenant_jobs(p, "acme")
    again = post(p, keys["acme"], "sentiment", {"text": text}, cache_ttl_s=600)
    assert again.status_code == 200, again.text
    assert again.json()["cached"] is True and again.json()["result"] == job["result"]
    assert again.json()["id"] == job["id"]
    assert tenant_jobs(p, "acme") == before, "no second job, so no second model call"
