"""Redis fails over under load (README.md, Redis failover): one master, one replica, three
sentinels, and the broker set to answer 202 only once a replica holds a submit
(SLUICE_REDIS_MIN_REPLICAS=1). The master is SIGKILLed while jobs are submitted: the sentinels
promote the replica, the broker and the api follow it, and every job answered 202 succeeds
exactly once. The old master comes back as a replica of the new one, and submits are answered
202 again."""
import contextlib
import signal
import time

from checks import Load, assert_exactly_once, wait_stored
from resp import RedisError


def wait_for(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def has_replica(p) -> bool:
    """Whether the master at p.redis_port has a replica now. A new connection each time: the
    sentinels close every client of a server they reconfigure."""
    with contextlib.suppress(OSError, RedisError), p.redis_admin() as redis:
        return b"connected_slaves:1" in redis.call("INFO", "replication")
    return False


def test_master_killed_under_load(pipeline):
    p = pipeline.start_replicated(SLUICE_REDIS_MIN_REPLICAS="1")
    p.start_worker("native", concurrency=8, name="native-1")
    p.start_worker("python", concurrency=8, name="python-1")
    p.wait_workers("native-1", "python-1")

    bodies = [{"type": "echo", "input": {"i": i}} for i in range(3000)]
    load = Load(p.url, bodies)
    wait_stored(p, 600)
    old_master = p.redis_port
    p.redis.send_signal(signal.SIGKILL)
    p.redis.wait()

    wait_for("the sentinels never promoted the replica", lambda: p.sentinel_master() == p.replica_port)
    p.redis_port = p.replica_port  # what redis_client() reads from now on
    # Back on its port with its data, the old master is turned into a replica of the new one.
    p.redis = p.start_redis_node("redis-a", old_master)
    wait_for("the old master never became a replica", lambda: has_replica(p))

    accepted = load.accepted()
    statuses = load.statuses()
    assert len(accepted) >= 300, statuses
    assert set(statuses) <= {202, 503}, statuses
    assert_exactly_once(p, {job_id: body["input"] for job_id, body in accepted.items()})

    # The broker and the api both reached the new master through the sentinels.
    assert f"127.0.0.1:{p.replica_port} connected" in p.broker_log()
    after = wait_for("no submit was answered 202 after the failover",
                     lambda: (r := p.http.post("/v1/jobs", json={"type": "echo", "input": {"after": True}}))
                     .status_code == 202 and r.json())
    assert p.wait_result(after["id"])["result"] == {"after": True}


def test_frozen_master_is_left_when_the_sentinels_switch(pipeline):
    """A master that stops answering but keeps its connections open (SIGSTOP: what a network
    partition looks like from Sluice's side) closes no connection: the sentinels' +switch-master
    message is what moves the broker and the api to the promoted replica."""
    p = pipeline.start_replicated()
    p.start_worker("native", concurrency=4, name="native-1")
    p.wait_workers("native-1")
    before = p.submit("echo", {"before": True})
    assert p.wait_result(before["id"])["result"] == {"before": True}

    p.redis.send_signal(signal.SIGSTOP)
    try:
        wait_for("the sentinels never promoted the replica", lambda: p.sentinel_master() == p.replica_port)
        p.redis_port = p.replica_port
        after = wait_for("no submit was answered 202 after the failover",
                         lambda: (r := p.http.post("/v1/jobs", json={"type": "echo", "input": {"after": True}}))
                         .status_code == 202 and r.json())
        result = wait_for("the api never read the result from the new master",
                          lambda: (r := p.http.get(f"/v1/jobs/{after['id']}/result")).status_code == 200 and r.json())
        assert result["result"] == {"after": True}
        assert "the sentinels moved master 'sluice'" in p.broker_log()
    finally:
        p.redis.send_signal(signal.SIGCONT)
