"""A process that reaches the broker's api port without an allowed api key cannot SUBMIT or
CANCEL: no REPLY comes back and nothing is stored. A worker's key does not open the api port
either: each socket has its own allow-list."""
import uuid

import pytest
import zmq
from sluice import protocol as p
from sluice.curve import read_key

from peers import NO_CURVE, UNKNOWN_KEY, received, rogue_dealer

WORKER_KEY = "an allowed worker key"


@pytest.mark.parametrize("how", [UNKNOWN_KEY, NO_CURVE, WORKER_KEY])
def test_rogue_api_client_cannot_submit_or_cancel(pipeline, context, how):
    victim = pipeline.submit("echo", {"mine": True})["id"]

    if how == WORKER_KEY:
        rogue = pipeline.allow(context.socket(zmq.DEALER), "worker")
        rogue.linger = 0
        rogue.connect(pipeline.frontend)
    else:
        rogue, _ = rogue_dealer(context, pipeline.frontend, read_key(pipeline.keys / "broker.pub"), how)
    forged = str(uuid.uuid4())
    rogue.send_multipart(p.encode(p.Submit(1, forged, "default", "echo", b"\xc0", 0, 3, 300, "", "", "", 0, "", 0,
                                           0, 0, 0, "", [])))
    rogue.send_multipart(p.encode(p.Cancel(2, victim)))
    rogue.send_multipart(p.encode(p.Ping(3)))
    assert received(rogue, 2.0) == []

    with pipeline.redis_client() as redis:
        assert redis.call("EXISTS", f"sluice:job:{forged}") == 0
    assert pipeline.http.get(f"/v1/jobs/{victim}").json()["status"] == "queued"
    if how != NO_CURVE:
        assert "frontend: refused a CURVE client" in pipeline.broker_log()
