"""A rogue ZMQ peer sends the broker malformed frames, wrong versions, truncated msgpack and
nonsense on both sockets: each message is logged and dropped, and the broker keeps serving."""
import time

import msgpack
import zmq

from pipeline import Pipeline

GARBAGE = [
    [b"just one frame"],
    [b"SLUICE/1", b"\x01"],
    [b"SLUICE/2", b"\x03", msgpack.packb([1])],
    [b"HTTP/1.1", b"\x03", msgpack.packb([1])],
    [b"SLUICE/1", b"\x63", msgpack.packb([])],
    [b"SLUICE/1", b"\x03\x03", msgpack.packb([1])],
    [b"SLUICE/1", b"\x01", b"\x98\x01"],                       # truncated SUBMIT
    [b"SLUICE/1", b"\x01", msgpack.packb({"req_id": 1})],      # a map, not an array
    [b"SLUICE/1", b"\x01", msgpack.packb(["x", "y", 1, 2])],    # wrong field types
    [b"SLUICE/1", b"\x01", b"\xdd\xff\xff\xff\xff"],            # claims 4 billion fields
    [b"SLUICE/1", b"\x10", msgpack.packb(["rogue", "x", [], 0, [], [], [], []])],        # READY with no types
    [b"SLUICE/1", b"\x10", msgpack.packb(["rogue", "x", ["bad type!"], 5, [""], [""], [0], [0]])],
    [b"SLUICE/1", b"\x14", msgpack.packb(["no-such-job", 1, b"\xc0"])],  # RESULT from a stranger
    [b"SLUICE/1", b"\x1b", msgpack.packb(["no-such-job", 1, 2**32 - 1, "x"])],  # RATE_LIMITED from a stranger
    [b"SLUICE/1", b"\x04", msgpack.packb([1, 200, "", "", "", ""])],     # REPLY sent to the broker
    [b"SLUICE/1", b"\x01", b"\x00" * 100000],
    [b"\xff" * 5000, b"\x01", b""],
]


def test_rogue_peer_is_ignored(fresh_pipeline: Pipeline):
    p = fresh_pipeline.start()
    p.start_worker("native", name="honest")
    p.wait_workers("honest")
    context = zmq.Context()
    try:
        for endpoint in (p.frontend, p.backend):
            # With the allowed keys: what is tested here is what the broker does with the
            # messages of a peer it admitted (tests/security/ has the peers it does not admit).
            rogue = p.allow(context.socket(zmq.DEALER), "api" if endpoint == p.frontend else "worker")
            rogue.setsockopt(zmq.LINGER, 0)
            rogue.connect(endpoint)
            for frames in GARBAGE * 3:
                rogue.send_multipart(frames)
            if endpoint == p.frontend:
                # A well-formed PING still gets its REPLY on the api socket.
                rogue.send_multipart([b"SLUICE/1", b"\x03", msgpack.packb([77])])
                assert rogue.poll(5000), "the broker stopped answering"
                frames = rogue.recv_multipart()
                assert frames[1] == b"\x04" and msgpack.unpackb(frames[2])[:2] == [77, 200]
            else:
                # A HEARTBEAT from a peer that never said READY gets DISCONNECT (once all the
                # garbage before it was read: one connection keeps order).
                rogue.send_multipart([b"SLUICE/1", b"\x18", msgpack.packb([])])
                deadline = time.monotonic() + 5
                while True:
                    assert rogue.poll(max(0, int((deadline - time.monotonic()) * 1000))), "no DISCONNECT"
                    if rogue.recv_multipart()[1] == b"\x19":
                        break
            rogue.close()
    finally:
        context.term()

    time.sleep(0.3)
    assert p.broker.poll() is None, "the broker died"
    job = p.submit("echo", {"after": "garbage"})
    assert p.wait_result(job["id"])["result"] == {"after": "garbage"}
    log = p.broker_log()
    assert "dropped malformed message" in log and "malformed body" in log
    assert "dropped READY from 'rogue'" in log
