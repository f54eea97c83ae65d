"""Webhook test helpers: attempts() reads a job's delivery attempts; Receiver is a real HTTP server on a free port (http.server, one thread per
request) that records every request and answers as its path says:

    /ok/...          200
    /flaky/N/...     500 to the first N requests of that path, then 200
    /hang/...        holds the request for HANG_S seconds, then 200
    /redirect/...    302 to /ok/redirected (a deliverer must not follow it)
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_S = 30


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []
        self.seen: Counter = Counter()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.seen[self.path] += 1
                    count = receiver.seen[self.path]
                    receiver.requests.append((self.path, headers, body))
                    receiver.changed.notify_all()
                parts = self.path.strip("/").split("/")
                status = 200
                if parts[0] == "flaky" and count <= int(parts[1]):
                    status = 500
                elif parts[0] == "hang":
                    time.sleep(HANG_S)
                elif parts[0] == "redirect":
                    status = 302
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "/ok/redirected")
                self.send_header("Content-Length", "2")
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, path_prefix: str, count: int = 1, timeout: float = 30.0) -> list[tuple[str, dict, bytes]]:
        """The requests whose path starts with `path_prefix`, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                got = [r for r in self.requests if r[0].startswith(path_prefix)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(got)} of {count} requests to {path_prefix}")
                self.changed.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attempts(p, job_id: str, count: int = 1, headers: dict | None = None, timeout: float = 30.0) -> list[dict]:
    """GET /v1/jobs/{id}/webhooks's attempts, once there are `count` of them (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        response = p.http.get(f"/v1/jobs/{job_id}/webhooks", headers=headers or {})
        assert response.status_code == 200, response.text
        got = response.json()["attempts"]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.1)
