"""Redis Sentinel and SLUICE_REDIS_MIN_REPLICAS (README.md, Redis failover): the api, the broker
and the webhook deliverer find the master through the sentinels; the sentinels let Sluice's
user ask where the master is and nothing more; a submit the replicas did not confirm in time
answers 503 not_replicated naming the job, and a retry with the same Idempotency-Key answers
for that job once a replica holds it. (The failover itself: tests/faults/test_redis_failover.py.)"""
import os
import shutil
import subprocess
import time

import pytest

from pipeline import BUILD, Pipeline, free_port
from resp import Redis, RedisError
from sluice import webhooks


@pytest.fixture
def replicated(tmp_path):
    p = Pipeline(tmp_path)
    try:
        yield p.start_replicated()
    finally:
        p.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_every_part_finds_the_master_through_the_sentinels(replicated):
    p = replicated
    p.start_worker("native", name="native-1")
    p.wait_workers("native-1")
    p.start_webhooks()  # returns once it reads the delivery stream on the master
    job = p.submit("echo", {"hello": "sentinel"})
    assert p.wait_result(job["id"])["result"] == {"hello": "sentinel"}
    assert f"redis 127.0.0.1:{p.redis_port} connected" in p.broker_log()


def test_sentinels_answer_sluice_where_the_master_is_and_nothing_more(replicated):
    p = replicated
    port = p.sentinel_ports[0]
    with Redis(port) as stranger:
        with pytest.raises(RedisError, match="NOAUTH"):
            stranger.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice")
    with Redis(port, password=p.redis_password) as sluice:
        assert sluice.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice") == [b"127.0.0.1", str(p.redis_port).encode()]
        assert sluice.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "x" * 10_000) is None
        for command in (["SENTINEL", "FAILOVER", "sluice"], ["SENTINEL", "REMOVE", "sluice"],
                        ["SENTINEL", "SET", "sluice", "quorum", "1"],
                        ["SENTINEL", "CONFIG", "SET", "resolve-hostnames", "yes"], ["ACL", "LIST"]):
            with pytest.raises(RedisError, match="NOPERM"):
                sluice.call(*command)
    # The replica's login may replicate and nothing else.
    replica_password = (p.secrets / "redis-replica-password").read_text().strip()
    with Redis(p.redis_port, user="replica", password=replica_password) as replica:
        with pytest.raises(RedisError, match="NOPERM"):
            replica.call("GET", "sluice:types")


def test_unreplicated_submit_answers_503_and_the_retry_answers_for_the_job(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_REDIS_MIN_REPLICAS="1", SLUICE_REDIS_WAIT_TIMEOUT_MS="200",
                             SLUICE_KNOWN_TYPES="echo")
    headers = {"Idempotency-Key": "sentinel-test-1"}
    body = {"type": "echo", "input": {"n": 1}}
    refused = p.http.post("/v1/jobs", json=body, headers=headers)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "not_replicated"
    assert "0 of the 1 replica(s)" in error["message"]
    assert "Idempotency-Key" in error["message"]
    assert refused.headers["Retry-After"] == "1"
    job_id = error["message"].split()[1]
    assert p.http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"  # stored on the master all the same
    # Once replicas are known to be missing, a WAIT holds the broker's connection briefly only.
    again = p.http.post("/v1/jobs", json={"type": "echo", "input": {"n": 0}})
    assert again.status_code == 503 and "confirmed it within 100 ms" in again.json()["error"]["message"], again.text

    # A replica joins: the same key now answers 202 for the job stored before, and only it. (As a
    # client does, each submit is retried after a 503: a replica busy writing its AOF on this
    # shared machine may miss a WAIT now and then.)
    replica_port = free_port()
    p.start_redis_node("redis-replica", replica_port, replica_of=p.redis_port)
    p.wait_replica_synced(replica_port)
    accepted = submit_until_accepted(p, body, headers)
    assert accepted.json()["id"] == job_id
    assert accepted.headers["Idempotent-Replayed"] == "true"
    fresh = submit_until_accepted(p, {"type": "echo", "input": {"n": 2}}, {"Idempotency-Key": "sentinel-test-2"})
    assert "Idempotent-Replayed" not in fresh.headers
    assert "refused the login" not in (p.workdir / "redis-replica.log").read_text()


def submit_until_accepted(p: Pipeline, body: dict, headers: dict, attempts: int = 50):
    """POSTs `body` until it is answered 202, retrying 503 not_replicated as a client would."""
    for _ in range(attempts):
        response = p.http.post("/v1/jobs", json=body, headers=headers)
        if response.status_code != 503:
            assert response.status_code == 202, response.text
            return response
        assert response.json()["error"]["code"] == "not_replicated", response.text
        time.sleep(0.2)
    raise AssertionError(f"still not replicated after {attempts} submits: {response.text}")


@pytest.mark.parametrize("binary", ["api", "broker"])
@pytest.mark.parametrize("name, value, problem", [
    ("SLUICE_REDIS_SENTINELS", "10.0.0.1", "lists '10.0.0.1', not host:port"),
    ("SLUICE_REDIS_SENTINELS", "10.0.0.1:26379,::1:26379", "lists '::1:26379', not host:port"),
    ("SLUICE_REDIS_SENTINELS", "h:0", "lists 'h:0', not host:port"),
    ("SLUICE_REDIS_SENTINELS", " , ", "lists no sentinel"),
])
def test_bad_sentinel_list_stops_the_process(binary, name, value, problem):
    path = BUILD / binary / f"sluice-{binary}"
    done = subprocess.run([str(path)], env={**os.environ, name: value}, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert f"{name} {problem}" in done.stderr


@pytest.mark.parametrize("name, value, range_text", [
    ("SLUICE_REDIS_MIN_REPLICAS", "-1", "0..100"),
    ("SLUICE_REDIS_MIN_REPLICAS", "one", "0..100"),
    ("SLUICE_REDIS_WAIT_TIMEOUT_MS", "0", "1..60000"),
])
def test_bad_min_replicas_stops_the_broker(name, value, range_text):
    done = subprocess.run([str(BUILD / "broker" / "sluice-broker")], env={**os.environ, name: value},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert f"{name} must be an integer in {range_text}, got '{value}'" in done.stderr


def test_webhook_deliverer_reads_the_sentinel_list_as_the_api_does():
    config = webhooks.Config.from_env({"SLUICE_REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380",
                                       "SLUICE_REDIS_MASTER_NAME": "jobs"})
    assert config.redis_sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert config.redis_master_name == "jobs"
    for bad in ("10.0.0.1", "::1:26379", "h:0", "h:65536", "a b:1", "h:1," * 17):
        with pytest.raises(ValueError, match="SLUICE_REDIS_SENTINELS"):
            webhooks.Config.from_env({"SLUICE_REDIS_SENTINELS": bad})
