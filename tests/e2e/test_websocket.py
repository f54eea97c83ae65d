"""GET /v1/ws: one WebSocket follows many jobs. Events arrive per job in seq order with the same
members as the SSE data, replayed from last_seq like Last-Event-ID; unsubscribe and cancel work
over the connection; hostile messages get an error or the close code that says why while the api
carries on; a reader that stops reading is closed with 4000 and resumes with last_seq, the api's
memory bounded meanwhile; a peer that answers no ping is dropped; a WebSocket holds a connection
slot; shutdown says 1001."""
import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipeline import running_pipeline

SEND_QUEUE_BYTES = 64 * 1024
CHUNKS = 4000
IDLE_TIMEOUT_MS = 2000
MAX_SUBSCRIPTIONS = 1000
TERMINAL = {"succeeded", "failed", "canceled"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, request):
    """A small send queue; native workers (echo, sleep), a Python one with big_chunks, and
    `parked`, a known type no worker takes (its jobs stay queued)."""
    env = {"SLUICE_API_WS_SEND_QUEUE_BYTES": str(SEND_QUEUE_BYTES)}
    with running_pipeline(tmp_path_factory.mktemp("ws"), lambda: request.session.testsfailed, env=env,
                          SLUICE_KNOWN_TYPES="parked") as p:
        p.add_task_modules()
        p.start_worker("native")
        p.start_worker("python", modules=["big_tasks"])
        p.wait_ready("sleep")
        p.wait_ready("big_chunks")
        yield p


def send(conn, **message) -> None:
    conn.send(json.dumps(message))


def receive(conn, timeout: float = 30) -> dict:
    return json.loads(conn.recv(timeout=timeout))


def follow(conn, job_ids: list[str], timeout: float = 30) -> dict[str, list[dict]]:
    """Reads event messages until every job in `job_ids` has had its terminal event."""
    events: dict[str, list[dict]] = {job_id: [] for job_id in job_ids}
    pending, deadline = set(job_ids), time.monotonic() + timeout
    while pending:
        message = receive(conn, deadline - time.monotonic())
        if message["op"] != "event":
            continue
        events[message["job_id"]].append(message)
        if message["event"] in TERMINAL:
            pending.discard(message["job_id"])
    return events


def without_op(message: dict) -> dict:
    return {key: value for key, value in message.items() if key != "op"}


def test_one_connection_follows_several_jobs_with_the_sse_data(ws):
    jobs = [ws.submit("sleep", {"ms": 300 + 100 * i})["id"] for i in range(3)] + [ws.submit("echo", {"n": 7})["id"]]
    with ws.websocket() as conn:
        for job_id in jobs:
            send(conn, op="subscribe", job_id=job_id)
        events = follow(conn, jobs)
    for job_id in jobs:
        seqs = [event["seq"] for event in events[job_id]]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert [without_op(event) for event in events[job_id]] == [e["data"] for e in ws.events(job_id)]
    assert events[jobs[-1]][-1]["result"] == {"n": 7}


def test_last_seq_replays_what_was_missed(ws):
    job_id = ws.submit("sleep", {"ms": 10})["id"]
    ws.wait_result(job_id)
    sse = [e["data"] for e in ws.events(job_id, last_event_id=1)]
    with ws.websocket() as conn:
        send(conn, op="subscribe", job_id=job_id, last_seq=1)
        assert receive(conn) == {"op": "subscribed", "job_id": job_id}
        replayed = follow(conn, [job_id])[job_id]
        assert [without_op(event) for event in replayed] == sse and sse[0]["seq"] == 2
        # A client that has everything already: the subscription ends at once.
        send(conn, op="subscribe", job_id=job_id, last_seq=sse[-1]["seq"])
        assert receive(conn) == {"op": "subscribed", "job_id": job_id}
        assert receive(conn) == {"op": "unsubscribed", "job_id": job_id}


def test_unsubscribe_stops_a_jobs_events(ws):
    slow = ws.submit("sleep", {"ms": 1500})["id"]
    with ws.websocket() as conn:
        send(conn, op="subscribe", job_id=slow)
        assert receive(conn)["op"] == "subscribed"
        assert receive(conn)["event"] == "queued"
        send(conn, op="unsubscribe", job_id=slow)
        while (message := receive(conn))["op"] == "event":
            assert message["event"] != "succeeded"
        assert message == {"op": "unsubscribed", "job_id": slow}
        ws.wait_result(slow)
        quick = ws.submit("echo", {})["id"]
        send(conn, op="subscribe", job_id=quick)
        while not ((message := receive(conn))["op"] == "event" and message["event"] in TERMINAL):
            assert message["job_id"] == quick, message


def test_cancel_over_websocket(ws):
    job_id = ws.submit("sleep", {"ms": 60000})["id"]
    missing = "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10"
    with ws.websocket() as conn:
        send(conn, op="subscribe", job_id=job_id)
        send(conn, op="cancel", job_id=job_id)
        # The answer and the job's canceled event come in either order.
        answer, messages = {"op": "canceled", "job_id": job_id}, [receive(conn)]
        while answer not in messages or "canceled" not in [m.get("event") for m in messages]:
            messages.append(receive(conn))
        send(conn, op="cancel", job_id=job_id)
        assert receive(conn)["code"] == "job_finished"
        send(conn, op="cancel", job_id=missing)
        refused = receive(conn)
        assert (refused["op"], refused["job_id"], refused["code"]) == ("error", missing, "job_not_found")
    assert ws.http.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"


@pytest.mark.parametrize("text, code", [
    ("{not json", "invalid_json"), ("[1, 2]", "invalid_json"), ('{"op": "dance", "job_id": "x"}', "invalid_request"),
    ('{"op": "subscribe"}', "invalid_request"), ('{"op": "subscribe", "job_id": 5}', "invalid_request"),
    ('{"op": "subscribe", "job_id": "x", "last_seq": -1}', "invalid_request"),
    ('{"op": "subscribe", "job_id": "not-a-job"}', "job_not_found"),
])
def test_bad_messages_get_an_error_and_the_connection_carries_on(ws, text, code):
    job_id = ws.submit("echo", {})["id"]
    with ws.websocket() as conn:
        conn.send(text)
        assert receive(conn)["code"] == code
        send(conn, op="subscribe", job_id=job_id)
        assert follow(conn, [job_id])[job_id][-1]["event"] == "succeeded"


def close_code(conn) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            conn.recv(timeout=10)
    return closed.value.rcvd.code


def test_oversize_and_binary_messages_close_the_connection_with_their_codes(ws):
    with ws.websocket() as conn:
        conn.send(json.dumps({"op": "subscribe", "job_id": "x" * 5000}))
        assert close_code(conn) == 1009
    with ws.websocket() as conn:
        conn.send(b'{"op": "subscribe"}')
        assert close_code(conn) == 1003
    assert ws.http.get("/healthz").status_code == 200


def test_a_connection_follows_at_most_so_many_jobs(ws):
    jobs = [ws.submit("parked", {})["id"] for _ in range(MAX_SUBSCRIPTIONS + 1)]
    with ws.websocket() as conn:
        for job_id in jobs:
            send(conn, op="subscribe", job_id=job_id)
        answers = [receive(conn) for _ in range(2 * MAX_SUBSCRIPTIONS + 1)]  # subscribed + queued each
        refused = [a for a in answers if a["op"] == "error"]
        message = f"a connection follows at most {MAX_SUBSCRIPTIONS} jobs: unsubscribe from one first"
        assert refused == [{"op": "error", "job_id": jobs[-1], "code": "too_many_subscriptions", "message": message}]
        send(conn, op="unsubscribe", job_id=jobs[0])
        assert receive(conn)["op"] == "unsubscribed"
        send(conn, op="subscribe", job_id=jobs[-1])
        assert receive(conn) == {"op": "subscribed", "job_id": jobs[-1]}
    assert ws.http.get("/healthz").status_code == 200


def upgrade(sock: socket.socket, host: str) -> bytes:
    """Sends the upgrade of GET /v1/ws on a raw socket; returns what came after the 101's head."""
    sock.sendall(f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return rest


def send_frame(sock: socket.socket, text: str) -> None:
    """One masked text frame (a zero mask key leaves the payload as it is)."""
    payload = text.encode()
    assert len(payload) < 126
    sock.sendall(bytes([0x81, 0x80 | len(payload), 0, 0, 0, 0]) + payload)


def read_frames(sock: socket.socket, received: bytes):
    """Yields (opcode, payload) of the server's frames until its close frame (or the end)."""
    while True:
        while len(received) < 2 or len(received) < frame_end(received):
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            received += chunk
        end = frame_end(received)
        start = end - frame_length(received)
        yield received[0] & 0x0F, received[start:end]
        if received[0] & 0x0F == 0x8:
            return
        received = received[end:]


def frame_length(frame: bytes) -> int:
    size = frame[1] & 0x7F
    if size == 126:
        return int.from_bytes(frame[2:4], "big") if len(frame) >= 4 else 1 << 30
    if size == 127:
        return int.from_bytes(frame[2:10], "big") if len(frame) >= 10 else 1 << 30
    return size


def frame_end(frame: bytes) -> int:
    header = {126: 4, 127: 10}.get(frame[1] & 0x7F, 2)
    return header + frame_length(frame)


def test_a_reader_that_stops_reading_is_closed_with_4000_and_resumes_with_last_seq(ws):
    """Once its subscription has caught up (the job's `started` read), the client reads nothing
    while the job streams 12 MB of chunks, more than the kernel's socket buffers hold: the api
    queues them up to its bound, keeps its memory meanwhile, and closes with 4000 once the
    client reads again (within the idle timeout). Then the client resumes with last_seq."""
    job_id = ws.submit("big_chunks", {"count": CHUNKS, "size": 3000, "delay_ms": 500, "batch": 200,
                                      "pause_ms": 20})["id"]
    host, port = ws.api_address()
    before = ws.api_rss_mb()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.connect((host, port))
        reader = read_frames(sock, upgrade(sock, host))
        send_frame(sock, json.dumps({"op": "subscribe", "job_id": job_id}))
        frames = []
        while b'"event":"started"' not in (frames or [(0, b"")])[-1][1]:
            frames.append(next(reader))
        ws.wait_result(job_id)
        assert ws.api_rss_mb() - before < 32
        frames += list(reader)
    *messages, (opcode, close) = frames
    assert opcode == 0x8 and int.from_bytes(close[:2], "big") == 4000
    assert close[2:] == b"send queue full: resubscribe with last_seq"
    texts = [payload for opcode, payload in messages if opcode == 0x1]
    seqs = [m["seq"] for m in map(json.loads, texts) if m["op"] == "event"]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < CHUNKS
    with ws.websocket() as conn:
        send(conn, op="subscribe", job_id=job_id, last_seq=seqs[-1])
        rest = [event["seq"] for event in follow(conn, [job_id])[job_id]]
    assert seqs + rest == list(range(1, seqs[-1] + len(rest) + 1))


@pytest.fixture
def idle(tmp_path, request):
    """A pipeline of its own with a short WebSocket idle timeout."""
    env = {"SLUICE_API_WS_IDLE_TIMEOUT_MS": str(IDLE_TIMEOUT_MS)}
    with running_pipeline(tmp_path, lambda: request.session.testsfailed, env=env) as p:
        yield p


def test_a_peer_that_answers_no_ping_is_dropped(idle):
    """A raw client that completes the upgrade and then neither reads nor answers: the api pings
    it at half the idle timeout and drops it at the end. A client that answers stays."""
    host, port = idle.api_address()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        time.sleep(IDLE_TIMEOUT_MS / 1000 * 2)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert received.startswith(b"HTTP/1.1 101")
        assert b"\x89\x00" in received  # the ping, unanswered
    with idle.websocket(ping_interval=None) as conn:
        with pytest.raises(TimeoutError):
            conn.recv(timeout=IDLE_TIMEOUT_MS / 1000 * 2)
        assert conn.ping().wait(5)


def test_a_websocket_holds_a_connection_slot(tmp_path, request):
    with running_pipeline(tmp_path, lambda: request.session.testsfailed, env={"SLUICE_API_MAX_CONNECTIONS": "2"}) as p:
        with p.websocket(), p.websocket() as second:
            # The api answers 503 as it accepts and closes: the client reads the answer, or, when
            # the close reset the connection before its upgrade was read, only the close. (On a
            # raw socket: the websockets client can trip on its own assertion after a reset.)
            with socket.create_connection(p.api_address(), timeout=10) as third:
                third.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: sluice\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                try:
                    answer = third.recv(4096)
                except ConnectionResetError:
                    answer = b""
            assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer
            second.close()
            deadline = time.monotonic() + 5
            while True:  # the slot is free once the api has seen the close
                try:
                    with p.websocket():
                        break
                except (InvalidStatus, ConnectionClosed):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)


def test_shutdown_closes_websockets_with_going_away(tmp_path, request):
    with running_pipeline(tmp_path, lambda: request.session.testsfailed) as p:
        with p.websocket() as conn:
            p.stop_process(p.api)
            assert close_code(conn) == 1001
