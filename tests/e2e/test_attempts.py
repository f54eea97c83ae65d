"""Attempts, driven by a worker of the test's own (an allowed key): across a retry every chunk and
progress event carries its attempt, so a client that sees `retrying` drops the superseded
attempt's text; and an attempt lost to a crash counts against max_redeliveries, not against the
handler's max_attempts."""
import zmq

from pipeline import next_job
from sluice import protocol


def test_chunks_and_progress_carry_their_attempt_across_a_retry(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="chat", SLUICE_RETRY_BACKOFF_MS="0")
    job_id = p.submit("chat", {"prompt": "hi"}, max_attempts=2)["id"]
    context = zmq.Context()
    try:
        worker = p.own_worker(context, "streamer", ["chat"])
        first = next_job(worker)
        worker.send_multipart(protocol.encode(protocol.Chunk(job_id, first.attempt, "Hel")))
        worker.send_multipart(protocol.encode(protocol.Progress(job_id, first.attempt, 0.5, "half")))
        worker.send_multipart(protocol.encode(protocol.Failure(job_id, first.attempt, "model went away", True)))
        second = next_job(worker)
        worker.send_multipart(protocol.encode(protocol.Chunk(job_id, second.attempt, "Hello")))
        worker.send_multipart(protocol.encode(protocol.Result(job_id, second.attempt, b"\xa5Hello")))
        events = [e["data"] for e in p.events(job_id, timeout=10)]
    finally:
        context.destroy(linger=0)

    streamed = [(e["event"], e.get("attempt"), e.get("data") or e.get("message")) for e in events
                if e["event"] in ("chunk", "progress", "retrying")]
    assert streamed == [("chunk", 1, "Hel"), ("progress", 1, "half"), ("retrying", 1, None), ("chunk", 2, "Hello")]
    # What a client keeps: the chunks of the last attempt.
    last = max(e["attempt"] for e in events if e["event"] == "chunk")
    assert "".join(e["data"] for e in events if e["event"] == "chunk" and e["attempt"] == last) == "Hello"
    assert events[-1]["event"] == "succeeded" and events[-1]["result"] == "Hello"


def test_lost_attempts_count_against_max_redeliveries_not_max_attempts(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="chat", SLUICE_RETRY_BACKOFF_MS="0", SLUICE_MAX_REDELIVERIES="2")
    job_id = p.submit("chat", {"prompt": "hi"}, max_attempts=1)["id"]
    context = zmq.Context()
    try:
        worker = p.own_worker(context, "crashy", ["chat"])
        # A worker that gives a job back unasked (its shutdown grace ran out) did not finish it:
        # the attempt is lost, as if the worker had died.
        for _ in range(3):
            job = next_job(worker)
            worker.send_multipart(protocol.encode(protocol.Canceled(job_id, job.attempt)))
        done = p.wait_result(job_id, timeout=10)
    finally:
        context.destroy(linger=0)
    assert done["status"] == "failed"
    assert done["attempts"] == 3 and done["redeliveries"] == 3  # max_attempts 1 did not stop it
    assert [h["outcome"] for h in done["history"]] == ["lost", "lost", "lost"]
    assert done["error"] == "canceled by the worker (lost 3 times, max_redeliveries 2)"
