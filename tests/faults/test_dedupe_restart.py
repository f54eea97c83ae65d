"""Single flight across a broker crash (README.md, "Single-flight (dedupe)"): the leader, its
joiners and the single-flight key live in Redis, so a broker killed with SIGKILL while a joined
job runs comes back with them: the leader's lost attempt runs again, its joiner follows it to
the same result, and a submit after the restart still joins it."""
import signal
import time

from pipeline import iter_sse


def until(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_joined_job_follows_its_leader_across_a_broker_restart(pipeline, tmp_path):
    p = pipeline.start()
    p.add_task_modules()
    p.start_worker("python", modules=["dedupe_tasks"], name="python-1")
    p.wait_ready("gated")
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    body = {"type": "gated", "input": {"runs": str(runs), "gate": str(gate)}, "options": {"dedupe": True}}

    def run_count() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    leader = p.http.post("/v1/jobs", json=body).json()["id"]
    until(lambda: run_count() == 1, "the first run")
    joiner = p.http.post("/v1/jobs", json=body).json()
    assert joiner["joined"] == leader, joiner

    p.broker.send_signal(signal.SIGKILL)
    p.broker.wait()
    p.start_broker(same_endpoints=True)
    # The new broker found the leader's attempt lost and runs it again (at least once).
    until(lambda: run_count() == 2, "the run after the restart")
    late = p.http.post("/v1/jobs", json=body).json()
    assert late["joined"] == leader, late

    gate.touch()
    results = {job_id: p.wait_result(job_id, timeout=60) for job_id in (leader, joiner["id"], late["id"])}
    assert {r["status"] for r in results.values()} == {"succeeded"}, results
    assert {str(r["result"]) for r in results.values()} == {str({"text": "c0 c1 end"})}
    jobs = {job_id: p.http.get(f"/v1/jobs/{job_id}").json() for job_id in results}
    assert [a["outcome"] for a in jobs[leader]["history"]] == ["lost", "succeeded"]
    assert jobs[joiner["id"]]["history"] == jobs[late["id"]]["history"] == jobs[leader]["history"]
    stream = [(e["id"], e["event"]) for e in iter_sse(p.http, f"/v1/jobs/{leader}/events", {}, 30)]
    assert "retrying" in [name for _, name in stream]
    for job_id in (joiner["id"], late["id"]):
        assert [(e["id"], e["event"]) for e in iter_sse(p.http, f"/v1/jobs/{job_id}/events", {}, 30)] == stream
    assert run_count() == 2

