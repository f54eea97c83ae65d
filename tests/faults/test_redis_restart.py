"""redis-server is killed and restarted (AOF on) under load: no acknowledged job is lost, the
broker and api reconnect by themselves, and /readyz reports the outage while it lasts."""
import signal
import time

from checks import Load, assert_exactly_once, wait_stored


def test_redis_restart_under_load(pipeline):
    p = pipeline.start()
    p.start_worker("native", concurrency=8, name="native-1")
    p.start_worker("python", concurrency=8, name="python-1")
    p.wait_workers("native-1", "python-1")

    bodies = [{"type": "echo", "input": {"i": i}} for i in range(3000)]
    load = Load(p.url, bodies)
    wait_stored(p, 600)
    p.redis.send_signal(signal.SIGKILL)
    p.redis.wait()
    time.sleep(0.3)
    ready = p.http.get("/readyz")
    assert ready.status_code == 503, ready.text
    time.sleep(1.0)
    p.start_redis()

    deadline = time.monotonic() + 15
    while p.http.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "api never saw Redis again"
        time.sleep(0.2)

    accepted = load.accepted()
    assert len(accepted) >= 500, load.statuses()
    assert_exactly_once(p, {job_id: body["input"] for job_id, body in accepted.items()})
    # Jobs submitted after the outage run too.
    after = p.submit("echo", {"after": True})
    assert p.wait_result(after["id"])["result"] == {"after": True}
