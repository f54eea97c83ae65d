"""A process that reaches the broker's worker port without an allowed key cannot pose as a
worker: its READY is never read (the CURVE handshake fails first), it receives no job and no
message at all, the jobs stay queued, and the broker logs the refused key once, not per retry.
A worker with an allowed key gets jobs as before."""
import time

import msgpack
import pytest
import zmq
from sluice import protocol as p
from sluice.curve import read_key

from peers import NO_CURVE, UNKNOWN_KEY, received, rogue_dealer


@pytest.mark.parametrize("how", [UNKNOWN_KEY, NO_CURVE])
def test_rogue_worker_gets_nothing_and_jobs_stay_queued(pipeline, context, how):
    jobs = [pipeline.submit("echo", {"n": n})["id"] for n in range(3)]
    broker_key, keypair = read_key(pipeline.keys / "broker.pub"), zmq.curve_keypair()
    # The same rogue tries five times (libzmq gives a socket up once its handshake was refused).
    for _ in range(5):
        rogue, public = rogue_dealer(context, pipeline.backend, broker_key, how, keypair)
        rogue.send_multipart(p.encode(p.Ready("rogue", "python", ["echo"], 8, [""])))
        assert received(rogue, 0.6, keepalive=p.encode(p.Heartbeat())) == []
        rogue.close()

    statuses = {pipeline.http.get(f"/v1/jobs/{job}").json()["status"] for job in jobs}
    assert statuses == {"queued"}
    log = pipeline.broker_log()
    assert "worker rogue (" not in log
    if how == UNKNOWN_KEY:
        refusals = [line for line in log.splitlines() if public in line]
        assert len(refusals) == 1, refusals
        assert "backend: refused a CURVE client from 127.0.0.1" in refusals[0]
        assert "not in SLUICE_WORKER_KEYS_FILE" in refusals[0]

    # The jobs were kept for a worker with an allowed key.
    pipeline.start_worker("native", name="honest")
    assert [pipeline.wait_result(job)["result"] for job in jobs] == [{"n": n} for n in range(3)]


def test_worker_with_an_allowed_key_gets_jobs(pipeline, context):
    job = pipeline.submit("echo", {"n": 0})["id"]
    worker = pipeline.allow(context.socket(zmq.DEALER))
    worker.linger = 0
    worker.connect(pipeline.backend)
    worker.send_multipart(p.encode(p.Ready("allowed", "python", ["echo"], 1, [""])))
    deadline = time.monotonic() + 10
    while True:
        assert worker.poll(max(1, int((deadline - time.monotonic()) * 1000))), "no JOB"
        msg = p.decode(worker.recv_multipart())
        if isinstance(msg, p.Job):
            break
    assert msg.job_id == job and msgpack.unpackb(msg.input) == {"n": 0}
    worker.send_multipart(p.encode(p.Result(msg.job_id, msg.attempt, msg.input)))
    done = pipeline.wait_result(job, timeout=10)
    assert done["status"] == "succeeded" and done["result"] == {"n": 0}
    assert [h["worker"] for h in done["history"]] == ["allowed"]
