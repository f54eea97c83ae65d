"""Hostile HTTP clients against the real api: broken, truncated, oversized, slow and malicious
requests each get a clear JSON error (or a bounded close), and the api stays up, answers other
clients and keeps its memory bounded. The api runs with a 2 s request timeout and a low
connection limit, so slow clients and leaked connection slots show up within seconds."""
import json
import re
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from pipeline import Pipeline, running_pipeline

REQUEST_TIMEOUT_S = 2.0
# Low, so connection slots that are not given back would lock the api out within a test.
MAX_CONNECTIONS = 120
MAX_BODY = 1024 * 1024  # the api's default SLUICE_API_MAX_BODY
JSON = {"content-type": "application/json"}
RSS_LIMIT_MB = 200
# Slack for a busy 2-core machine on top of the request timeout, when waiting for a cut-off.
CUTOFF_SLACK_S = 1.5


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, request):
    """Redis + broker + api (2 s request timeout, 120 connections) + one native worker."""
    env = {"SLUICE_API_REQUEST_TIMEOUT_MS": str(int(REQUEST_TIMEOUT_S * 1000)),
           "SLUICE_API_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    with running_pipeline(tmp_path_factory.mktemp("hostile"), lambda: request.session.testsfailed, env) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        yield p


@pytest.fixture(autouse=True)
def api_survives(hostile):
    """After every test: the api process is alive and answers a plain request at once."""
    yield
    assert hostile.api.poll() is None, "the api process died"
    response = hostile.http.get("/healthz", timeout=2)
    assert response.status_code == 200, response.text


# -- helpers -----------------------------------------------------------------------------------

def api_rss_mb(p: Pipeline) -> float:
    """The api process's resident set size in MiB (VmRSS from /proc/PID/status)."""
    for line in Path(f"/proc/{p.api.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line")


def connect(p: Pipeline, timeout: float = 5.0) -> socket.socket:
    host, port = p.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset after its answer counts as close)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Reads one response with a Content-Length body; returns (status, headers, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return status, headers, body[:length]


def exchange(p: Pipeline, data: bytes) -> bytes:
    """Sends `data` on a fresh connection and returns all the server answers before closing."""
    with connect(p) as sock:
        sock.sendall(data)
        return read_until_close(sock)


def assert_json_error(raw: bytes, status: int, code: str | None = None) -> dict:
    """`raw` is one HTTP response with `status` and a JSON error body (with `code`)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), raw[:300]
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert error["message"]
    if code:
        assert error["code"] == code, error
    return error


def http_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error["message"]


class Trickler:
    """Clients that send a never-ending request one byte per `interval` to every socket, and
    record when the server cuts each one off (EOF or reset), measured from when it connected."""

    PREFIX = b"POST /v1/jobs HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nX-Slow: "

    def __init__(self, p: Pipeline, count: int, interval: float = 0.2):
        self.interval = interval
        self.socks = [connect(p) for _ in range(count)]
        self.started = time.monotonic()
        self.sent = [0] * count
        self.cut_after: list[float | None] = [None] * count

    def _byte(self, i: int) -> bytes:
        n = self.sent[i]
        return self.PREFIX[n:n + 1] if n < len(self.PREFIX) else b"a"

    def open_count(self) -> int:
        return sum(cut is None for cut in self.cut_after)

    def run(self, limit: float) -> None:
        """Trickles until every socket was cut off or `limit` seconds after connecting."""
        for sock in self.socks:
            sock.setblocking(False)
        while self.open_count() and time.monotonic() - self.started < limit:
            for i, sock in enumerate(self.socks):
                if self.cut_after[i] is not None:
                    continue
                try:
                    readable, _, _ = select.select([sock], [], [], 0)
                    if readable and sock.recv(4096) == b"":
                        raise ConnectionResetError("EOF")
                    sock.send(self._byte(i))
                    self.sent[i] += 1
                except (ConnectionError, OSError):
                    self.cut_after[i] = time.monotonic() - self.started
            time.sleep(self.interval)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


# -- broken and truncated requests -------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"\x00\xff\xfe\x80 GARBAGE \r\n\r\n",
    bytes(range(256)) + b"\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost localhost\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    b"GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",
    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
], ids=["garbage", "all-bytes", "bad-version", "no-colon", "nul-in-header", "space-in-target",
        "negative-length", "bad-length", "two-lengths", "length-and-chunked"])
def test_malformed_requests_get_a_400_json_error(hostile, data):
    assert_json_error(exchange(hostile, data), 400, "bad_request")


# A complete request hidden where the api must see a body (or nothing at all): served, it would
# answer 200 after the first answer. Behind a proxy that frames the first request differently,
# that is request smuggling.
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("head, body", [
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n", SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"0\r\n\r\n" + SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
     % (5 + len(SMUGGLED)), b"0\r\n\r\n" + SMUGGLED),
    (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED),
     SMUGGLED),
    (b"POST /v1/jobs HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", b"0\r\n\r\n" + SMUGGLED),
    (b"GET /healthz HTTP/1.1\r\n\r\n", SMUGGLED),
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", SMUGGLED),
], ids=["te-identity", "te-gzip", "te-chunked-gzip", "te-chunked-twice", "te-identity-and-length",
        "length-then-chunked", "chunked-then-length", "two-different-lengths", "te-in-http-1.0", "no-host",
        "two-hosts"])
def test_ambiguous_framing_is_400_and_closes_without_serving_what_follows(hostile, head, body):
    answer = exchange(hostile, head + body)  # read_until_close: fails unless the api closes
    assert len(re.findall(rb"HTTP/1\.[01] \d{3} ", answer)) == 1, answer  # one status line
    assert_json_error(answer, 400, "bad_request")
    assert b"Connection: close" in answer


@pytest.mark.parametrize("body", [
    b"ZZZ\r\nabc\r\n0\r\n\r\n",                        # size is not hex
    b"ffffffffffffffffffffffff\r\nabc\r\n",            # size overflows 64 bits
    b"5\r\nabcdefgh\r\n0\r\n\r\n",                      # data longer than its size
    b"3\r\nabc0\r\n\r\n",                               # no CRLF after the data
    b"-1\r\nabc\r\n",                                   # negative size
])
def test_invalid_chunked_encoding_gets_a_400_json_error(hostile, body):
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert_json_error(exchange(hostile, head + body), 400, "bad_request")


def test_requests_cut_short_then_closed_give_their_connection_back(hostile):
    """More truncated requests than the api has connection slots: if a slot leaked per
    connection, the api would refuse new connections (503) by the end."""
    truncated = [
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Ty",                          # inside headers
        b"POST /v1/jo",                                                            # inside the start line
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"type\"",  # short body
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",  # in a chunk
    ]
    for i in range(MAX_CONNECTIONS + 40):
        with connect(hostile) as sock:
            sock.sendall(truncated[i % len(truncated)])
    # Slots come back as soon as the api reads the EOF: well before the 2 s request timeout.
    deadline = time.monotonic() + 1.0
    while True:
        response = hostile.http.get("/healthz", timeout=2)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == 200, response.text
    job = hostile.submit("echo", "after truncation")
    assert hostile.wait_result(job["id"], timeout=10)["result"] == "after truncation"


def test_a_body_shorter_than_its_content_length_is_cut_off_at_the_request_timeout(hostile):
    with connect(hostile) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        answer = read_until_close(sock, timeout=REQUEST_TIMEOUT_S + 5)
        elapsed = time.monotonic() - start
    assert answer == b""
    assert REQUEST_TIMEOUT_S - 0.3 <= elapsed <= REQUEST_TIMEOUT_S + CUTOFF_SLACK_S, elapsed


# -- oversized headers and bodies --------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(500)) + b"\r\n",
    b"GET /healthz?" + b"q" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["one-huge-header", "many-headers", "huge-target"])
def test_oversized_headers_get_431(hostile, data):
    assert_json_error(exchange(hostile, data), 431, "headers_too_large")


def test_an_oversized_content_length_gets_413_before_the_body_is_sent(hostile):
    with connect(hostile) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        status, _, body = read_response(sock)
        assert time.monotonic() - start < 1.0  # answered on the headers alone
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    # Through a regular client, with the body actually sent.
    response = hostile.http.post("/v1/jobs", content=b'{"type":"echo","input":"' + b"x" * (MAX_BODY + 10) + b'"}',
                                 headers=JSON)
    http_error(response, 413, "body_too_large")


def test_an_oversized_chunked_body_gets_413(hostile):
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    with connect(hostile) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(MAX_BODY // len(piece) + 2):
                sock.sendall(chunk)
        except ConnectionError:
            pass  # the api may stop listening once it has answered
        status, _, body = read_response(sock)
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"
    # A chunked body under the limit still works.
    def small():
        yield b'{"type": "echo", '
        yield b'"input": "chunked"}'
    response = hostile.http.post("/v1/jobs", content=small(), headers=JSON)
    assert response.status_code == 202, response.text
    assert hostile.wait_result(response.json()["id"], timeout=10)["result"] == "chunked"


def test_a_flood_of_oversized_bodies_keeps_memory_bounded(hostile):
    """40 clients each push 6 MiB at the api at once (half Content-Length, half chunked); the
    api answers 413 and discards, so its RSS stays small. Buffering them would cost ~240 MiB."""
    before = api_rss_mb(hostile)
    body_size = 6 * 1024 * 1024
    statuses: list[int] = []

    def flood(i: int) -> None:
        piece = b"y" * 65536
        with connect(hostile, timeout=10) as sock:
            try:
                if i % 2:
                    sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % body_size)
                    statuses.append(read_response(sock)[0])  # 413 comes on the headers alone
                    for _ in range(body_size // len(piece)):
                        sock.sendall(piece)
                else:
                    sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for _ in range(body_size // len(piece)):
                        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (ConnectionError, socket.timeout):
                pass  # the api closed after answering and lingering: expected
            if i % 2 == 0:
                try:
                    statuses.append(read_response(sock)[0])
                except (ConnectionError, AssertionError, socket.timeout):
                    statuses.append(-1)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    after = api_rss_mb(hostile)
    assert statuses.count(413) >= 30, statuses  # Content-Length ones always; most chunked ones
    assert set(statuses) <= {413, -1}, statuses
    assert after < RSS_LIMIT_MB, (before, after)
    assert after - before < 64, (before, after)


# -- hostile JSON ------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b'{"type": "echo", "input": "\xff\xfe"}',
    b'{"type": "echo", "input": {"k\xc3": 1}}',
    b'{"type": "echo", "input": "\xc0\xaf overlong slash"}',
    b'{"type": "echo", "input": "\xed\xa0\x80 encoded surrogate"}',
    b'{"type": "echo", "input": "\xf4\x90\x80\x80 past U+10FFFF"}',
    b'{"type": "echo", "input": "\xe2\x82"}',
    b'{"type": "echo", "input": "\\ud800 lone escaped surrogate"}',
    b'{"type": "ech\xf0"}',
], ids=["ff-fe", "key", "overlong", "surrogate", "too-high", "truncated", "escaped-surrogate", "in-type"])
def test_invalid_utf8_in_json_strings_is_400_invalid_json(hostile, body):
    response = hostile.http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    http_error(response, 400, "invalid_json")


@pytest.mark.parametrize("body", [
    b"[" * 100000,
    b'{"type": "echo", "input": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    b'{"type": "echo", "input": ' + b'{"a": ' * 100000 + b"1" + b"}" * 100000 + b"}",
], ids=["unclosed-arrays", "balanced-arrays", "objects"])
def test_deeply_nested_json_is_refused_quickly(hostile, body):
    start = time.monotonic()
    response = hostile.http.post("/v1/jobs", content=body, headers=JSON)
    assert time.monotonic() - start < 2.0
    assert 400 <= response.status_code < 500, response.text
    assert "nest" in http_error(response, response.status_code, "invalid_request")


@pytest.mark.parametrize("body, field", [
    ({"type": ["echo"]}, "type"),
    ({"type": {"name": "echo"}}, "type"),
    ({"type": 1}, "type"),
    ({"type": True}, "type"),
    ({"type": "echo", "options": "fast"}, "options"),
    ({"type": "echo", "options": [1]}, "options"),
    ({"type": "echo", "options": 3}, "options"),
    ({"type": "echo", "options": {"priority": "5"}}, "options.priority"),
    ({"type": "echo", "options": {"priority": True}}, "options.priority"),
    ({"type": "echo", "options": {"priority": None}}, "options.priority"),
    ({"type": "echo", "options": {"timeout_s": 1.5}}, "options.timeout_s"),
    ({"type": "echo", "options": {"max_attempts": [2]}}, "options.max_attempts"),
    ({"type": "echo", "options": {"max_attempts": {"n": 2}}}, "options.max_attempts"),
])
def test_wrong_types_are_422_naming_the_field(hostile, body, field):
    message = http_error(hostile.http.post("/v1/jobs", json=body), 422, "invalid_request")
    assert field in message, message


@pytest.mark.parametrize("option", ["timeout_s", "max_attempts", "priority"])
@pytest.mark.parametrize("value", ["1e300", "-1e300", "1e-300", "-1", "0.5", str(2 ** 64), str(2 ** 63),
                                   str(-2 ** 63), str(-2 ** 64)])
def test_negative_and_huge_option_values_are_422(hostile, option, value):
    body = b'{"type": "echo", "options": {"%s": %s}}' % (option.encode(), value.encode())
    message = http_error(hostile.http.post("/v1/jobs", content=body, headers=JSON), 422, "invalid_request")
    assert f"options.{option}" in message, message


@pytest.mark.parametrize("number", [b"1e999999", b"-1e999999", b"1" * 400])
def test_a_number_too_large_for_a_double_is_400_invalid_json(hostile, number):
    body = b'{"type": "echo", "options": {"priority": %s}}' % number
    http_error(hostile.http.post("/v1/jobs", content=body, headers=JSON), 400, "invalid_json")
    body = b'{"type": "echo", "input": [%s]}' % number
    http_error(hostile.http.post("/v1/jobs", content=body, headers=JSON), 400, "invalid_json")


def test_bad_idempotency_keys_are_422_naming_the_header(hostile):
    for key in ["", "x" * 256, "has space", "tab\there"]:
        response = hostile.http.post("/v1/jobs", json={"type": "echo"}, headers={"Idempotency-Key": key})
        assert "Idempotency-Key" in http_error(response, 422, "invalid_request"), key
    body = b'{"type": "echo"}'
    for headers in (b"Idempotency-Key: caf\xc3\xa9\r\n",  # not ASCII
                    b"Idempotency-Key: a\r\nIdempotency-Key: b\r\n"):  # given twice
        raw = exchange(hostile, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"Content-Type: application/json\r\n%s"
                                b"Content-Length: %d\r\n\r\n%s" % (headers, len(body), body))
        assert "Idempotency-Key" in assert_json_error(raw, 422, "invalid_request")["message"], headers


def test_dead_list_paging_is_bounded_and_checked(hostile):
    for query in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"offset": -1}, {"offset": "1e3"}):
        http_error(hostile.http.get("/v1/dead", params=query), 422, "invalid_request")
    page = hostile.http.get("/v1/dead", params={"limit": 1000, "offset": 2 ** 53})
    assert page.status_code == 200 and page.json()["jobs"] == [], page.text


# -- slow clients ------------------------------------------------------------------------------

def test_a_trickling_client_is_cut_off_within_the_request_timeout(hostile):
    trickler = Trickler(hostile, 1)
    try:
        trickler.run(limit=REQUEST_TIMEOUT_S + CUTOFF_SLACK_S + 2)
    finally:
        trickler.close()
    cut = trickler.cut_after[0]
    assert cut is not None, "the api let a trickling client hold its connection"
    assert trickler.sent[0] >= 5  # it really was trickling, not refused at once
    assert REQUEST_TIMEOUT_S - 0.3 <= cut <= REQUEST_TIMEOUT_S + CUTOFF_SLACK_S, cut


def test_fifty_slow_clients_do_not_stop_a_normal_client(hostile):
    trickler = Trickler(hostile, 50)
    runner = threading.Thread(target=trickler.run, args=(REQUEST_TIMEOUT_S + CUTOFF_SLACK_S + 2,))
    runner.start()
    try:
        time.sleep(0.5)  # all 50 are mid-request now
        start = time.monotonic()
        job = hostile.submit("echo", {"while": "slow clients"})
        result = hostile.wait_result(job["id"], timeout=10)
        elapsed = time.monotonic() - start
        still_open = trickler.open_count()
    finally:
        runner.join(timeout=30)
        trickler.close()
    assert result["status"] == "succeeded" and result["result"] == {"while": "slow clients"}
    # Served while every slow client was still holding its connection, not after they were cut.
    assert still_open == 50, still_open
    assert elapsed < REQUEST_TIMEOUT_S, elapsed
    cuts = trickler.cut_after
    assert all(c is not None for c in cuts), f"{cuts.count(None)} slow clients never cut off"
    assert max(cuts) <= REQUEST_TIMEOUT_S + CUTOFF_SLACK_S, max(cuts)
