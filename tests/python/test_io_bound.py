"""Many I/O-bound jobs per process: one `sluice-worker` process (concurrency 300, provider
`openai`) keeps hundreds of slow model calls in flight at once.

The model is a local OpenAI-compatible HTTP server (stdlib asyncio, below) that answers
/v1/chat/completions after SLOW_S seconds, streaming a few tokens and the usage; the broker is a
ZMQ ROUTER in the test that sends JOBS chat jobs at once. Serially they would take
JOBS x SLOW_S seconds; the test asserts they overlap (the server saw >= 200 requests in flight)
and finish within a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import msgpack
import zmq
import zmq.asyncio

from sluice import protocol as p

JOBS = 250
SLOW_S = 2.0           # the server's delay before it answers each request (covers the ramp-up)
TOKENS = ["Hello", ",", " slow", " world"]
TEST_LIMIT = 40.0      # seconds; the test takes about 7


class SlowOpenAI:
    """A minimal OpenAI-compatible server: POST /v1/chat/completions, streamed or not, after
    SLOW_S seconds. Counts the requests in flight (max_in_flight) and served."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0
        self.models: set[str] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=1024)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on this connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = json.loads(await reader.readexactly(int(headers.get("content-length", 0))))
                if not lines[0].startswith("POST /v1/chat/completions"):
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await asyncio.sleep(SLOW_S)
                finally:
                    self.in_flight -= 1
                self.models.add(body.get("model"))
                await self.answer(body, writer)
                self.served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def answer(body: dict, writer: asyncio.StreamWriter) -> None:
        usage = {"prompt_tokens": 11, "completion_tokens": len(TOKENS), "total_tokens": 15}
        base = {"id": "chatcmpl-1", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            payload = json.dumps(dict(base, object="chat.completion", usage=usage, choices=[{
                "index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "".join(TOKENS)}}])).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
            await writer.drain()
            return
        events = [dict(base, object="chat.completion.chunk", choices=[{
            "index": 0, "delta": {"role": "assistant", "content": token}, "finish_reason": None}])
            for token in TOKENS]
        events.append(dict(base, object="chat.completion.chunk", choices=[{
            "index": 0, "delta": {}, "finish_reason": "stop"}]))
        if body.get("stream_options", {}).get("include_usage"):
            events.append(dict(base, object="chat.completion.chunk", choices=[], usage=usage))
        data = b"".join(b"data: %s\n\n" % json.dumps(e).encode() for e in events)
        data += b"data: [DONE]\n\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        await writer.drain()


def test_one_worker_process_keeps_hundreds_of_slow_model_calls_in_flight():
    async def scenario():
        server = SlowOpenAI()
        base_url = await server.start()
        ctx = zmq.asyncio.Context()
        broker = ctx.socket(zmq.ROUTER)
        broker.bind("tcp://127.0.0.1:*")
        endpoint = broker.getsockopt(zmq.LAST_ENDPOINT).decode()
        env = dict(os.environ, SLUICE_MODEL_PROVIDER="openai", SLUICE_OPENAI_BASE_URL=base_url,
                   SLUICE_OPENAI_MODEL="slow-model", SLUICE_OPENAI_API_KEY="test-key",
                   SLUICE_LOG_LEVEL="warn")
        proc = subprocess.Popen([sys.executable, "-m", "sluice", "sluice.ai_tasks",
                                 "--broker", endpoint, "--concurrency", "300",
                                 "--name", "io-worker"], env=env, stderr=subprocess.PIPE,
                                text=True)
        results, chunks = {}, {}
        try:
            while True:  # READY (the worker's start-up: imports, no model to load)
                frames = await asyncio.wait_for(broker.recv_multipart(), 20)
                msg = p.decode(frames[1:])
                if isinstance(msg, p.Ready):
                    identity = frames[0]
                    break
            assert msg.concurrency == 300 and "chat" in msg.types
            started = time.monotonic()
            for i in range(JOBS):
                job_input = msgpack.packb({"messages": [{"role": "user", "content": f"hi {i}"}]})
                broker.send_multipart([identity, *p.encode(
                    p.Job(f"job-{i}", "chat", job_input, 1, 60))])
            last_beat = time.monotonic()
            while len(results) < JOBS:
                if time.monotonic() - last_beat > 0.5:  # keep the worker's broker alive
                    broker.send_multipart([identity, *p.encode(p.Heartbeat())])
                    last_beat = time.monotonic()
                if not await broker.poll(200):
                    assert time.monotonic() - started < 20, f"only {len(results)} results"
                    continue
                msg = p.decode((await broker.recv_multipart())[1:])
                if isinstance(msg, p.Chunk):
                    chunks.setdefault(msg.job_id, []).append(msg.data)
                elif isinstance(msg, p.Result):
                    results[msg.job_id] = msgpack.unpackb(msg.result, raw=False)
                else:
                    assert isinstance(msg, p.Heartbeat), msg
            elapsed = time.monotonic() - started
            return server, results, chunks, elapsed
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            ctx.destroy(linger=0)
            server.server.close()

    server, results, chunks, elapsed = asyncio.run(asyncio.wait_for(scenario(), TEST_LIMIT))
    report = (f"{JOBS} chat jobs of {SLOW_S} s each in {elapsed:.2f} s; "
              f"max in flight at the server: {server.max_in_flight}")
    print(report)
    assert server.served == JOBS and server.models == {"slow-model"}
    assert server.max_in_flight >= 200, report
    assert elapsed < JOBS * SLOW_S / 20, report  # serial would take JOBS x SLOW_S
    for i in range(JOBS):
        result = results[f"job-{i}"]
        assert result == {"text": "Hello, slow world", "model": "slow-model",
                          "usage": {"prompt_tokens": 11, "completion_tokens": 4}}
        assert chunks[f"job-{i}"] == TOKENS  # streamed, in order
