"""A worker is killed with SIGKILL mid-job: its jobs run again on another worker once its
lease ends, and each still succeeds exactly once."""
import signal

from checks import Load, assert_exactly_once, wait_stored


def test_worker_sigkill_mid_job(pipeline):
    p = pipeline.start()
    victim = p.start_worker("python", concurrency=8, name="victim")
    p.start_worker("native", concurrency=8, name="survivor")
    p.wait_workers("victim", "survivor")

    bodies = [{"type": "sleep", "input": {"ms": 40 + i % 20}} for i in range(1000)]
    load = Load(p.url, bodies)
    wait_stored(p, 200)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    accepted = load.accepted()
    assert len(accepted) == len(bodies), load.statuses()
    histories = assert_exactly_once(p, {job_id: {"slept_ms": body["input"]["ms"]} for job_id, body in accepted.items()})
    lost = [job_id for job_id, entries in histories.items() if any(e[4] == "lost" for e in entries)]
    assert lost, "the victim held no job when it was killed"
    for job_id in lost:
        entries = histories[job_id]
        assert entries[-1][1] == "survivor" and entries[-1][4] == "succeeded"
        assert p.http.get(f"/v1/jobs/{job_id}").json()["attempts"] >= 2
    assert "worker victim went silent" in p.broker_log()
