"""A process that binds the broker's ports while the broker is down, with a CURVE keypair of its
own or with no CURVE at all, gets nothing: the api and the workers hold the real broker's public
key, so their handshakes with it fail and nothing is sent. The api answers 503 meanwhile; once
the real broker is back both sides are served again."""
import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

OTHER_KEYS = "a keypair of its own"
NO_CURVE = "no CURVE"


def squat(context: zmq.Context, endpoint: str, how: str) -> tuple[zmq.Socket, zmq.Socket]:
    """A ROUTER bound to `endpoint` as `how` says, and a monitor of its connections."""
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    if how == OTHER_KEYS:
        sock.curve_server = True
        sock.curve_secretkey = zmq.curve_keypair()[1]
    monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sock.bind(endpoint)
    return sock, monitor


def events(monitor: zmq.Socket) -> set[int]:
    seen = set()
    while monitor.poll(0):
        seen.add(recv_monitor_message(monitor)["event"])
    return seen


@pytest.mark.parametrize("how", [OTHER_KEYS, NO_CURVE])
def test_squatter_on_the_broker_ports_gets_nothing(pipeline, context, how):
    pipeline.start_worker("native", name="honest")
    pipeline.wait_workers("honest")
    assert pipeline.stop_process(pipeline.broker) == 0
    squatters = [squat(context, endpoint, how) for endpoint in (pipeline.frontend, pipeline.backend)]

    started = time.monotonic()
    response = pipeline.http.post("/v1/jobs", json={"type": "echo", "input": {"to": "the squatter"}})
    assert response.status_code == 503 and response.json()["error"]["code"] == "broker_unavailable"
    assert time.monotonic() - started < 2, "the api waited for a broker that never answers"
    # The worker finds the broker silent after 3 s and connects again, sending READY first.
    time.sleep(5)
    for sock, monitor in squatters:
        assert sock.poll(0) == 0, f"the squatter on {sock.last_endpoint} received {sock.recv_multipart()}"
        assert events(monitor) == {zmq.EVENT_ACCEPTED}, "no client came, or a handshake succeeded"
        monitor.close()
        sock.close()

    pipeline.start_broker(same_endpoints=True)
    deadline = time.monotonic() + 10
    while (response := pipeline.http.post("/v1/jobs", json={"type": "echo", "input": {"to": "the broker"}})).status_code != 202:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.1)
    assert pipeline.wait_result(response.json()["id"], timeout=15)["result"] == {"to": "the broker"}
