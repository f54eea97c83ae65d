"""SSE streams as connections: keep-alive comments on a quiet stream, a client that hangs up
frees its connection at once, a request pipelined behind a stream is answered after it, and
the connection carries on after a stream ends."""
import http.client
import socket
import time

import pytest

from pipeline import running_pipeline

MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def streams(tmp_path_factory, request):
    """A pipeline with a short SSE keep-alive, few connection slots and a native worker."""
    env = {"SLUICE_API_SSE_KEEPALIVE_MS": "300", "SLUICE_API_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    with running_pipeline(tmp_path_factory.mktemp("streams"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.wait_ready("sleep")
        yield p


def open_stream(p, job_id: str) -> socket.socket:
    sock = socket.create_connection(p.api_address(), timeout=10)
    sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def read_until(sock: socket.socket, marker: bytes, timeout: float = 10) -> bytes:
    received = b""
    deadline = time.monotonic() + timeout
    while marker not in received and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_quiet_stream_gets_keep_alive_comments(streams):
    job_id = streams.submit("sleep", {"ms": 3000})["id"]
    with open_stream(streams, job_id) as sock:
        received = read_until(sock, b": keep-alive\n\n", timeout=5)
        assert b"event: queued" in received or b"event: started" in received
        assert b": keep-alive\n\n" in received
        received += read_until(sock, b"event: succeeded")
        assert b"event: succeeded" in received


def status_on_new_connection(p, path: str) -> int:
    conn = http.client.HTTPConnection(*p.api_address(), timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def open_streams(p, job_id: str, count: int, timeout: float) -> list[socket.socket]:
    """Opens `count` streams of `job_id`, retrying refused connections (503) until `timeout`."""
    socks, deadline = [], time.monotonic() + timeout
    while len(socks) < count:
        sock = open_stream(p, job_id)
        first = read_until(sock, b"\n\n")
        if b"event: " in first:
            socks.append(sock)
            continue
        sock.close()
        assert b"too_many_connections" in first and time.monotonic() < deadline, first
        time.sleep(0.01)
    return socks


def test_client_that_hangs_up_frees_its_connection_at_once(streams):
    job_id = streams.submit("sleep", {"ms": 30000})["id"]  # streams.http keeps one slot
    path = f"/v1/jobs/{job_id}"
    timeout = 5.0  # for the first round, earlier tests' connections may still be closing
    for _ in range(3):
        # Fill every slot with quiet streams (a new connection is refused), hang them all up,
        # and new streams get their slots at once: the old ones noticed, long before their
        # next keep-alive write would have failed.
        socks = open_streams(streams, job_id, MAX_CONNECTIONS - 1, timeout)
        assert status_on_new_connection(streams, path) == 503
        for sock in socks:
            sock.close()
        timeout = 0.5  # a hang-up noticed only by failing keep-alive writes takes over a second
    streams.http.delete(path)


def test_request_pipelined_behind_a_stream_is_answered_after_it(streams):
    job_id = streams.submit("sleep", {"ms": 500})["id"]
    with socket.create_connection(streams.api_address(), timeout=10) as sock:
        sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\n\r\n"
                     f"GET /v1/jobs/{job_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = read_until(sock, b'"status":"succeeded"')
    stream, _, after = received.partition(b"0\r\n\r\n")
    assert b"event: succeeded" in stream
    assert after.startswith(b"HTTP/1.1 200 OK\r\n") and b'"status":"succeeded"' in after


def test_connection_carries_on_after_an_event_stream_ends(streams):
    """An HTTP/1.1 SSE stream ends with the last chunk; the same connection then serves the
    next request. An HTTP/1.0 stream has no chunking, so it ends by closing."""
    job_id = streams.submit("sleep", {"ms": 1})["id"]
    streams.wait_result(job_id)
    host, port = streams.api_address()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", f"/v1/jobs/{job_id}/events")
    stream = conn.getresponse()
    assert stream.getheader("Transfer-Encoding") == "chunked"
    assert b"event: succeeded" in stream.read()
    conn.request("GET", f"/v1/jobs/{job_id}")
    again = conn.getresponse()
    assert again.status == 200
    assert b'"succeeded"' in again.read()
    conn.close()

    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.0\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert body.startswith(b"id: 1\nevent: queued\n") and b"event: succeeded" in body
    assert b"Transfer-Encoding" not in head

