"""A worker that keeps heartbeating but never answers (a handler stuck in a call that ignores
cancellation) loses the job at its lease deadline, timeout_s + 5 s; a late answer from that
superseded attempt is dropped, and the job runs again elsewhere."""
import threading
import time

import msgpack
import zmq


def frames(command: int, fields: list) -> list[bytes]:
    return [b"SLUICE/1", bytes([command]), msgpack.packb(fields, use_bin_type=True)]


class StuckWorker:
    """Says READY for `echo`, heartbeats every 0.5 s, takes one JOB and sits on it."""

    def __init__(self, pipeline):
        self.job = None
        self.stop = threading.Event()
        self.context = zmq.Context()
        self.socket = pipeline.allow(self.context.socket(zmq.DEALER))
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(pipeline.backend)
        self.socket.send_multipart(frames(16, ["stuck", "python", ["echo"], 1, [""], [""], [0], [0]]))
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if self.socket.poll(500):
                msg = self.socket.recv_multipart()
                if msg[1] == b"\x11" and self.job is None:
                    self.job = msgpack.unpackb(msg[2], raw=False)
            self.socket.send_multipart(frames(24, []))

    def answer_late(self):
        job_id, _, payload, attempt = self.job[:4]
        self.socket.send_multipart(frames(20, [job_id, attempt, msgpack.packb("stale result"), 0, 0]))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.socket.close()
        self.context.term()


def test_lease_expires_for_a_worker_that_never_answers(pipeline):
    p = pipeline.start()
    stuck = StuckWorker(p)
    try:
        p.wait_workers("stuck")
        job = p.submit("echo", {"payload": 1}, timeout_s=1, max_attempts=2)
        deadline = time.monotonic() + 5
        while stuck.job is None:
            assert time.monotonic() < deadline, "the stuck worker never got the job"
            time.sleep(0.05)
        started = time.monotonic()
        honest = p.start_worker("native", name="honest")
        p.wait_workers("honest")

        done = p.wait_result(job["id"], timeout=30)
        waited = time.monotonic() - started
        assert done["status"] == "succeeded" and done["result"] == {"payload": 1}
        assert 5.0 <= waited < 15, waited  # timeout_s 1 + lease grace 5, plus the retry backoff
        assert [(h["worker"], h["outcome"]) for h in done["history"]] == [("stuck", "lost"), ("honest", "succeeded")]
        assert done["redeliveries"] == 1

        stuck.answer_late()
        time.sleep(0.5)
        again = p.http.get(f"/v1/jobs/{job['id']}").json()
        assert again["result"] == {"payload": 1}
        assert "lease expired" in p.broker_log()
        assert "dropped stale RESULT" in p.broker_log()
        assert p.stop_process(honest) == 0
    finally:
        stuck.close()
