"""The broker is killed with SIGKILL under load and restarted: every accepted job still
reaches exactly one terminal state with the right result."""
import signal
import time

from checks import Load, assert_exactly_once, wait_stored


def test_broker_sigkill_under_load(pipeline):
    p = pipeline.start()
    p.start_worker("native", concurrency=8, name="native-1")
    p.start_worker("python", concurrency=8, name="python-1")
    p.wait_workers("native-1", "python-1")

    bodies = [{"type": "echo", "input": {"i": i, "pad": "x" * (i % 40)}} for i in range(3000)]
    load = Load(p.url, bodies)
    wait_stored(p, 600)
    p.broker.send_signal(signal.SIGKILL)
    p.broker.wait()
    time.sleep(0.5)
    p.start_broker(same_endpoints=True)

    accepted = load.accepted()
    assert len(accepted) >= 500, load.statuses()
    assert set(load.statuses()) <= {202, 503}, load.statuses()
    assert_exactly_once(p, {job_id: body["input"] for job_id, body in accepted.items()})
    # Workers found the new broker by themselves (within a few heartbeat intervals: the jobs may
    # all have ended before they noticed it).
    deadline = time.monotonic() + 15
    while p.broker_log().count("worker native-1 (cpp) ready") < 2:
        assert time.monotonic() < deadline, p.broker_log()
        time.sleep(0.1)
