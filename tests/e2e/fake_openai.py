"""A local OpenAI-compatible chat server for the provider rate limit tests: POST
/v1/chat/completions answers 429 (with Retry-After) to its first `refusals` calls, then a short
completion, streamed (SSE, with a usage chunk when stream_options.include_usage asks) or whole.
Runs in a thread of the test process on a free port; every call is logged with its time."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = ["Hello", " there", "!"]
PROMPT_TOKENS = 11


class FakeOpenAI:
    def __init__(self, refusals: int, retry_after_s: int) -> None:
        self.refusals = refusals
        self.retry_after_s = retry_after_s
        self.calls: list[tuple[float, int]] = []  # (time.time(), status answered)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def first_call_at(self, timeout: float = 30) -> float:
        """Waits for the first call; returns its time (time.time())."""
        deadline = time.monotonic() + timeout
        while not self.calls:
            assert time.monotonic() < deadline, "nothing called the provider"
            time.sleep(0.02)
        return self.calls[0][0]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake.lock:
                    refuse = sum(1 for _, status in fake.calls if status == 429) < fake.refusals
                    fake.calls.append((time.time(), 429 if refuse else 200))
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": "no such route"}})
                if refuse:
                    return self._json(429, {"error": {"message": "Rate limit reached for requests",
                                                      "type": "requests", "code": "rate_limit_exceeded"}},
                                      {"Retry-After": str(fake.retry_after_s)})
                model = body.get("model", "fake")
                if body.get("stream"):
                    return self._stream(model, bool((body.get("stream_options") or {}).get("include_usage")))
                self._json(200, {"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()),
                                 "model": model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": "".join(ANSWER)}}],
                                 "usage": _usage()})

            def _json(self, status: int, value: dict, headers: dict | None = None) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, text in (headers or {}).items():
                    self.send_header(name, text)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, model: str, usage: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
                for i, piece in enumerate(ANSWER):
                    delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                    self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if usage:
                    self._event({**base, "choices": [], "usage": _usage()})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, value: dict) -> None:
                self.wfile.write(b"data: " + json.dumps(value).encode() + b"\n\n")
                self.wfile.flush()

        return Handler


def _usage() -> dict:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(ANSWER),
            "total_tokens": PROMPT_TOKENS + len(ANSWER)}
