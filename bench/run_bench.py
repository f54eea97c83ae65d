"""Sluice benchmark (`make bench`): starts the real pipeline on free ports and measures

1. submit rate: HTTP 202/s for POST /v1/jobs with no worker taking the jobs (api -> broker ->
   Redis write -> ack), with client-side latency percentiles;
2. end-to-end echo jobs/s and latency (created -> finished, broker timestamps in Redis) with one
   native and one Python worker;
3. streaming latency: how long a chunk takes from the handler's ctx.emit() to an SSE client
   (worker -> broker -> Redis stream -> api -> client), several streams at once;
4. the embedded model through the whole pipeline: time to the first token at the client and
   tokens per second of a `chat` job.

Writes the figures to bench/RESULTS.md (the section between the BENCH markers) and prints them.
The HTTP client is a small keep-alive asyncio client, so the load generator costs little CPU on
this 2-core machine; it still shares the cores with the pipeline, which the report says.
"""
from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from pipeline import Pipeline, iter_sse, submit_all  # noqa: E402
from resp import Redis  # noqa: E402

SUBMITS = int(os.environ.get("BENCH_SUBMITS", "5000"))
E2E_JOBS = int(os.environ.get("BENCH_JOBS", "3000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
STREAMS = int(os.environ.get("BENCH_STREAMS", "8"))
CHUNKS = int(os.environ.get("BENCH_CHUNKS", "100"))
CHATS = int(os.environ.get("BENCH_CHATS", "3"))


def submit_many(url: str, count: int, job_type: str, make_input) -> tuple[list[float], list[str], float]:
    """Submits `count` jobs as fast as CONNECTIONS keep-alive connections go."""
    latencies: list[float] = []
    bodies = [{"type": job_type, "input": make_input(i)} for i in range(count)]
    started = time.perf_counter()
    results = asyncio.run(submit_all(url, bodies, CONNECTIONS, latencies))
    elapsed = time.perf_counter() - started
    refused = [status for status, _ in results if status != 202]
    if refused:
        raise RuntimeError(f"{len(refused)} submits were not accepted, e.g. {refused[0]}")
    return latencies, [reply["id"] for _, reply in results], elapsed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def redis_times(port: int, ids: list[str]) -> list[tuple[int, int, str]]:
    """(created_ms, finished_ms, status) of each job, read from Redis."""
    with Redis(port) as redis:
        replies = redis.pipeline([["HMGET", f"sluice:job:{i}", "created_ms", "finished_ms", "status"] for i in ids])
    return [(int(c), int(f or 0), s.decode()) for c, f, s in replies]


def bench_submit(workdir: Path) -> dict:
    p = Pipeline(workdir / "submit").start()
    try:
        # Declare the type, then stop the worker: jobs only queue, nothing consumes them.
        worker = p.start_worker("native")
        p.wait_ready("echo")
        p.stop_process(worker)
        latencies, _, elapsed = submit_many(p.url, SUBMITS, "echo", lambda i: {"i": i})
        return {"count": SUBMITS, "rate": SUBMITS / elapsed,
                "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}
    finally:
        p.stop()


def bench_e2e(workdir: Path) -> dict:
    p = Pipeline(workdir / "e2e").start()
    try:
        p.start_worker("native", concurrency=16)
        p.start_worker("python", concurrency=16)
        p.wait_ready("echo")
        time.sleep(0.5)
        _, ids, _ = submit_many(p.url, E2E_JOBS, "echo", lambda i: {"i": i, "text": "hello"})
        for job_id in ids[-50:]:
            p.wait_result(job_id, timeout=300)
        deadline = time.monotonic() + 300
        while True:
            rows = redis_times(p.redis_port, ids)
            if all(status == "succeeded" for _, _, status in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        done = [(c, f) for c, f, status in rows if status == "succeeded"]
        latencies = [f - c for c, f in done]
        span = (max(f for _, f in done) - min(c for c, _ in done)) / 1000
        return {"count": len(ids), "succeeded": len(done), "rate": len(done) / span,
                "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
    finally:
        p.stop()


def bench_stream(workdir: Path) -> dict:
    p = Pipeline(workdir / "stream").start()
    p.env["PYTHONPATH"] = str(ROOT)
    try:
        p.start_worker("python", concurrency=STREAMS, modules=["bench.stream_tasks"])
        p.wait_ready("bench_stream")
        jobs = [p.submit("bench_stream", {"chunks": CHUNKS, "interval_ms": 10, "delay_ms": 1000})["id"] for _ in range(STREAMS)]
        delays: list[float] = []

        def read(job_id):
            client = httpx.Client(base_url=p.url, timeout=60)
            for event in iter_sse(client, f"/v1/jobs/{job_id}/events", {}, 60):
                if event["event"] == "chunk":
                    delays.append((time.time_ns() - int(event["data"]["data"])) / 1e6)

        readers = [threading.Thread(target=read, args=(job_id,)) for job_id in jobs]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(120)
        return {"chunks": len(delays), "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99),
                "max_ms": max(delays)}
    finally:
        p.stop()


def bench_chat(workdir: Path) -> dict:
    p = Pipeline(workdir / "chat").start()
    try:
        p.start_worker("python", concurrency=1)
        p.wait_ready("chat")
        first_token, rates = [], []
        for i in range(CHATS):
            started = time.monotonic()
            job = p.submit("chat", {"messages": [{"role": "user", "content": f"Tell a story about river number {i}."}],
                                    "max_tokens": 128, "temperature": 0})
            chunk_times = [time.monotonic() for event in iter_sse(p.http, f"/v1/jobs/{job['id']}/events", {}, 120)
                           if event["event"] == "chunk"]
            first_token.append((chunk_times[0] - started) * 1000)
            if len(chunk_times) > 1:
                rates.append((len(chunk_times) - 1) / (chunk_times[-1] - chunk_times[0]))
        return {"jobs": CHATS, "first_token_ms": statistics.median(first_token), "tokens_per_s": statistics.median(rates)}
    finally:
        p.stop()


def write_report(submit: dict, e2e: dict, stream: dict, chat: dict) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    section = f"""<!-- BENCH:START -->
Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, {os.cpu_count()} cores,
{platform.platform()}. Command: `make bench` (BENCH_SUBMITS={SUBMITS} BENCH_JOBS={E2E_JOBS}
BENCH_CONNECTIONS={CONNECTIONS} BENCH_STREAMS={STREAMS} BENCH_CHUNKS={CHUNKS} BENCH_CHATS={CHATS}).
Load generator, api, broker, Redis and workers share the machine.

| measure | result |
|---|---|
| submit rate (POST /v1/jobs -> 202, no consumer), {submit['count']} jobs, {CONNECTIONS} connections | **{submit['rate']:.0f} jobs/s**, client latency p50 {submit['p50_ms']:.1f} ms, p99 {submit['p99_ms']:.1f} ms |
| end-to-end echo, {e2e['count']} jobs, 1 native + 1 Python worker (concurrency 16 each) | **{e2e['rate']:.0f} jobs/s** ({e2e['succeeded']} succeeded), created -> finished p50 {e2e['p50_ms']:.0f} ms, p99 {e2e['p99_ms']:.0f} ms |
| streaming: ctx.emit() -> SSE client, {STREAMS} streams x {CHUNKS} chunks (10 ms apart) | **p50 {stream['p50_ms']:.1f} ms**, p99 {stream['p99_ms']:.1f} ms, max {stream['max_ms']:.1f} ms over {stream['chunks']} chunks |
| `chat` on the embedded SmolLM2-135M (1 thread), {chat['jobs']} jobs of up to 128 tokens, one at a time | first token at the client after **{chat['first_token_ms']:.0f} ms** (submit included), **{chat['tokens_per_s']:.0f} tokens/s** (medians) |
<!-- BENCH:END -->"""
    results = ROOT / "bench" / "RESULTS.md"
    text = results.read_text()
    start, end = text.index("<!-- BENCH:START -->"), text.index("<!-- BENCH:END -->") + len("<!-- BENCH:END -->")
    results.write_text(text[:start] + section + text[end:])
    return section


def main():
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        workdir = Path(tmp)
        submit = bench_submit(workdir)
        e2e = bench_e2e(workdir)
        stream = bench_stream(workdir)
        chat = bench_chat(workdir)
    print(write_report(submit, e2e, stream, chat))


if __name__ == "__main__":
    main()
