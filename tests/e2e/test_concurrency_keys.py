"""Concurrency keys: jobs submitted with options.concurrency_key run at most
options.concurrency_limit at a time (per tenant), the rest waiting queued without holding up jobs
of other keys; the key survives a broker restart (the queues reload from Redis); a bad key or
limit is 422 at the api. Who ran when is read from the job hashes' started_ms and finished_ms."""
import signal

import pytest

from pipeline import most_at_once

SLEEP_MS = 300


def submit_sleeps(p, keys: list[str], **options) -> list[str]:
    """Submits one sleep job per concurrency key in `keys`; returns their ids."""
    return [p.submit("sleep", {"ms": SLEEP_MS}, concurrency_key=key, **options)["id"] for key in keys]


def test_one_at_a_time_per_key_while_other_keys_run_in_parallel(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep")
    shared = submit_sleeps(p, ["report:7"] * 5, concurrency_limit=1)
    others = submit_sleeps(p, [f"report:{i}" for i in range(5)], concurrency_limit=1)
    p.start_worker("native", concurrency=8)
    shared_times, other_times = p.wait_finished(shared), p.wait_finished(others)
    assert most_at_once(shared_times) == 1
    assert most_at_once(other_times) == 5
    # The shared key's jobs ran one after another, beside the others rather than after them.
    assert max(f for _, f in shared_times) - min(s for s, _ in shared_times) >= 5 * SLEEP_MS
    assert most_at_once(shared_times + other_times) == 6
    with p.redis_admin() as redis:
        assert redis.call("HMGET", f"sluice:job:{shared[0]}", "concurrency_key", "concurrency_limit") == [
            b"report:7", b"1"]


def test_a_canceled_job_gives_its_key_to_the_next_at_once(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep")
    first, second = [p.submit("sleep", {"ms": 60_000}, concurrency_key="k")["id"] for _ in range(2)]
    p.start_worker("native", concurrency=4)
    p.wait_started([first])
    assert p.run_times([second]) == [(0, 0)]
    assert p.http.delete(f"/v1/jobs/{first}").status_code == 200
    p.wait_started([second], timeout=2)
    assert p.http.delete(f"/v1/jobs/{second}").status_code == 200  # the worker stops at once


def test_a_key_and_its_limit_survive_a_broker_restart(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="sleep")
    pairs = submit_sleeps(p, ["pair"] * 6, concurrency_limit=2)
    p.stop_process(p.broker, signal.SIGKILL)
    p.start_broker(same_endpoints=True, SLUICE_KNOWN_TYPES="sleep")
    p.start_worker("native", concurrency=8)
    assert most_at_once(p.wait_finished(pairs)) == 2


@pytest.mark.parametrize("options, field", [
    ({"concurrency_key": "k" * 129}, "options.concurrency_key"),
    ({"concurrency_key": ""}, "options.concurrency_key"),
    ({"concurrency_key": "two words"}, "options.concurrency_key"),
    ({"concurrency_key": 42}, "options.concurrency_key"),
    ({"concurrency_key": "k", "concurrency_limit": 0}, "options.concurrency_limit"),
    ({"concurrency_key": "k", "concurrency_limit": 100000}, "options.concurrency_limit"),
    ({"concurrency_key": "k", "concurrency_limit": 1.5}, "options.concurrency_limit"),
    ({"concurrency_key": "k", "concurrency_limit": "1"}, "options.concurrency_limit"),
    ({"concurrency_limit": 1}, "options.concurrency_limit needs options.concurrency_key"),
])
def test_a_bad_key_or_limit_is_422_naming_the_field(pipeline, options, field):
    response = pipeline.http.post("/v1/jobs", json={"type": "echo", "input": 1, "options": options})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and field in error["message"], error
