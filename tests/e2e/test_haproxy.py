"""HAProxy (the committed deploy/haproxy.cfg) in front of the api: it limits connections per
client address whatever X-Forwarded-For a client sends, refuses malformed HTTP itself, answers
in the api's JSON error form when no api is up, and carries WebSocket and SSE streams."""
import json
import socket
import time

import httpx
import pytest
import websockets.sync.client

from pipeline import running_pipeline

PER_CLIENT = 4
FORGED = b"X-Forwarded-For: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\n"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, request):
    """One api behind HAProxy, which allows PER_CLIENT connections per client address."""
    env = {"SLUICE_API_TRUSTED_PROXIES": "127.0.0.1/32"}
    with running_pipeline(tmp_path_factory.mktemp("haproxy"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.wait_ready("sleep")
        p.proxy = p.start_haproxy([p.url], SLUICE_PROXY_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT))
        yield p


def proxy_address(p) -> tuple[str, int]:
    host, port = p.proxy.removeprefix("http://").split(":")
    return host, int(port)


def request(p, source: str, extra_headers: bytes = b"") -> tuple[socket.socket, int, dict]:
    """A keep-alive GET /healthz through HAProxy from `source`: (the open socket, the status,
    the JSON body)."""
    sock = socket.create_connection(proxy_address(p), timeout=10, source_address=(source, 0))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + extra_headers + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < content_length(data):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return sock, int(head.split()[1]), json.loads(body)


def content_length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_forged_x_forwarded_for_does_not_escape_the_per_client_limit(proxied):
    held = []
    try:
        for _ in range(PER_CLIENT):
            sock, status, _ = request(proxied, "127.0.0.1", FORGED)
            assert status == 200
            held.append(sock)
        sock, status, body = request(proxied, "127.0.0.1", FORGED)
        held.append(sock)
        assert status == 429 and body["error"]["code"] == "too_many_connections_from_client", body
        assert sock.recv(65536) == b""  # and the connection is closed
        # Another address still gets in, and so does this one once it closes a connection.
        other, status, _ = request(proxied, "127.0.0.2")
        held.append(other)
        assert status == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while (status := status_from(proxied, "127.0.0.1")) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # HAProxy has not counted the closes yet
    assert status == 200


def status_from(p, source: str) -> int:
    sock, status, _ = request(p, source)
    sock.close()
    return status


@pytest.mark.parametrize("garbage", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                                     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"])
def test_malformed_http_is_refused_by_the_proxy(proxied, garbage):
    """HAProxy 2.6's parser answers these itself (a short HTML 400: its parser errors take no
    custom body) and closes; the api behind it carries on."""
    with socket.create_connection(proxy_address(proxied), timeout=10) as sock:
        sock.sendall(garbage)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert httpx.get(f"{proxied.proxy}/healthz").status_code == 200


def test_websocket_and_sse_through_the_proxy(proxied):
    job_id = httpx.post(f"{proxied.proxy}/v1/jobs", json={"type": "sleep", "input": {"ms": 500}}).json()["id"]
    url = proxied.proxy.replace("http://", "ws://") + "/v1/ws"
    with websockets.sync.client.connect(url, proxy=None, open_timeout=10) as conn:
        conn.send(json.dumps({"op": "subscribe", "job_id": job_id}))
        seqs, last = [], None
        while last not in ("succeeded", "failed", "canceled"):
            message = json.loads(conn.recv(timeout=30))
            if message["op"] == "event":
                seqs.append(message["seq"])
                last = message["event"]
    assert last == "succeeded" and seqs == list(range(1, len(seqs) + 1)), seqs
    with httpx.Client(base_url=proxied.proxy, timeout=30) as http:
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            ids = [int(line[3:]) for line in response.iter_lines() if line.startswith("id:")]
    assert ids == seqs


def test_no_api_up_is_a_json_503(proxied):
    port = proxied.api_address()[1]
    proxied.stop_process(proxied.api)
    try:
        response = httpx.post(f"{proxied.proxy}/v1/jobs", json={"type": "sleep", "input": {"ms": 1}}, timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "no_api_available", response.text
    finally:
        proxied.start_api(SLUICE_API_PORT=str(port))
