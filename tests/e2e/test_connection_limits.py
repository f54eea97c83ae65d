"""Connection limits against the real api: one client holding every connection it may (idle
sockets and half-sent requests) does not lock another client out, the last slots are kept for
clients holding few connections, and a connection that sends nothing is closed after the short
first-byte timeout; a trusted proxy's connections count in the total only, and no header makes
a client one. Clients are told apart by address: 127.0.0.1, 127.0.0.2, ... all reach the api on
loopback."""
import json
import select
import socket
import time

import httpx
import pytest

from pipeline import running_pipeline

MAX_CONNECTIONS = 40
PER_CLIENT = 16
RESERVE = MAX_CONNECTIONS // 8       # the api keeps the last eighth for small clients
RESERVE_CLIENT = 4                   # ... those holding fewer than this many connections
FIRST_BYTE_TIMEOUT_S = 4.0
REQUEST_TIMEOUT_S = 10.0
SLACK_S = 1.5                        # a busy 2-core machine, on top of a timeout
HALF_REQUEST = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"type\""
PROXY = "127.0.0.9"                  # SLUICE_API_TRUSTED_PROXIES, as HAProxy's address would be


@pytest.fixture(scope="module")
def limited(tmp_path_factory, request):
    env = {"SLUICE_API_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
           "SLUICE_API_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
           "SLUICE_API_FIRST_BYTE_TIMEOUT_MS": str(int(FIRST_BYTE_TIMEOUT_S * 1000)),
           "SLUICE_API_REQUEST_TIMEOUT_MS": str(int(REQUEST_TIMEOUT_S * 1000)),
           "SLUICE_API_TRUSTED_PROXIES": f"{PROXY}/32"}
    with running_pipeline(tmp_path_factory.mktemp("limits"), lambda: request.session.testsfailed, env) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        p.http.close()  # its keep-alive connection would count against 127.0.0.1
        yield p


def connect(p, source: str) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(p.api_address())
    return sock


def client(p, source: str) -> httpx.Client:
    return httpx.Client(base_url=p.url, timeout=5, transport=httpx.HTTPTransport(local_address=source))


def hold(p, source: str, count: int) -> list[socket.socket]:
    """`count` connections from `source`: the first half send nothing, the rest half a request."""
    socks = [connect(p, source) for _ in range(count)]
    for sock in socks[count // 2:]:
        sock.sendall(HALF_REQUEST)
    time.sleep(0.2)  # every shard has accepted (and counted) them
    return socks


def refusal(p, source: str) -> tuple[int, dict, dict]:
    """Connects from `source` and reads the refusal: (status, headers, error)."""
    with connect(p, source) as sock:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)["error"]


def still_open(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable  # the api has neither answered nor closed


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()
    time.sleep(0.3)  # the api notices and gives the slots back


def test_a_client_at_its_limit_does_not_lock_out_another(limited):
    greedy = hold(limited, "127.0.0.1", PER_CLIENT)
    try:
        status, headers, error = refusal(limited, "127.0.0.1")
        assert status == 429 and error["code"] == "too_many_connections_from_client", error
        assert int(headers["retry-after"]) >= 1
        started = time.monotonic()
        with client(limited, "127.0.0.2") as other:
            assert other.get("/healthz").status_code == 200
            submitted = other.post("/v1/jobs", json={"type": "echo", "input": "past a greedy client"})
            assert submitted.status_code == 202, submitted.text
            result = other.get(f"/v1/jobs/{submitted.json()['id']}/result", params={"wait": 5})
            assert result.json()["result"] == "past a greedy client"
        assert time.monotonic() - started < FIRST_BYTE_TIMEOUT_S - 1
        assert all(still_open(sock) for sock in greedy)  # served while every slot was held
    finally:
        close_all(greedy)


def test_the_last_slots_are_kept_for_clients_holding_few(limited):
    # Two clients at their limit and a third that keeps opening: the server fills up to the
    # reserve, the third gets into the reserve only while it holds few connections.
    socks = hold(limited, "127.0.0.1", PER_CLIENT) + hold(limited, "127.0.0.3", PER_CLIENT)
    regular = MAX_CONNECTIONS - RESERVE - 2 * PER_CLIENT
    try:
        assert 0 < regular < RESERVE_CLIENT
        socks += hold(limited, "127.0.0.4", RESERVE_CLIENT)  # the last ones come from the reserve
        status, _, error = refusal(limited, "127.0.0.4")
        assert status == 503 and error["code"] == "too_many_connections", error
        assert refusal(limited, "127.0.0.1")[0] == 429
        # A new client still gets in: its health check and a submit.
        with client(limited, "127.0.0.5") as newcomer:
            assert newcomer.get("/healthz").status_code == 200
            assert newcomer.post("/v1/jobs", json={"type": "echo", "input": 1}).status_code == 202
    finally:
        close_all(socks)
    with client(limited, "127.0.0.4") as released:
        assert released.get("/healthz").status_code == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_first_byte_timeout(limited):
    with connect(limited, "127.0.0.6") as silent, connect(limited, "127.0.0.6") as talking:
        started = time.monotonic()
        talking.sendall(b"G")  # has begun a request: the request timeout applies
        silent.settimeout(FIRST_BYTE_TIMEOUT_S + SLACK_S + 2)
        assert silent.recv(4096) == b""  # closed without an answer
        elapsed = time.monotonic() - started
        assert FIRST_BYTE_TIMEOUT_S - 0.3 <= elapsed <= FIRST_BYTE_TIMEOUT_S + SLACK_S, elapsed
        assert still_open(talking)


def test_a_trusted_proxy_is_held_to_the_total_only(limited):
    proxied = hold(limited, PROXY, PER_CLIENT + RESERVE_CLIENT)
    try:
        assert all(still_open(sock) for sock in proxied)  # none refused past the per-client limit
        with client(limited, PROXY) as through_proxy:
            assert through_proxy.get("/healthz").status_code == 200
    finally:
        close_all(proxied)


def test_forwarded_headers_do_not_make_a_client_a_proxy(limited):
    # A client that names the proxy (or anyone) in X-Forwarded-For and Forwarded on every
    # request still counts as its own address.
    forged = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: %s\r\nForwarded: for=%s\r\n"
              b"X-Real-IP: %s\r\n\r\n") % ((PROXY.encode(),) * 3)
    socks = [connect(limited, "127.0.0.7") for _ in range(PER_CLIENT)]
    try:
        for sock in socks:
            sock.sendall(forged)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        status, _, error = refusal(limited, "127.0.0.7")
        assert status == 429 and error["code"] == "too_many_connections_from_client", error
    finally:
        close_all(socks)
