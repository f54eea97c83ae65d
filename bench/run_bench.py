"""Sluice benchmark (`make bench`): starts the real pipeline on free ports and measures

1. submit rate: HTTP 202/s for POST /v1/jobs with no worker taking the jobs (api -> broker ->
   Redis write -> ack), with client-side latency percentiles;
2. end-to-end echo jobs/s and latency (created -> finished, broker timestamps in Redis) with one
   native and one Python worker.

Writes the figures to bench/RESULTS.md (the section between the BENCH markers) and prints them.
The HTTP client is a small keep-alive asyncio client, so the load generator costs little CPU on
this 2-core machine; it still shares the cores with the pipeline, which the report says.
"""
from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from pipeline import Pipeline, submit_all  # noqa: E402
from resp import Redis  # noqa: E402

SUBMITS = int(os.environ.get("BENCH_SUBMITS", "5000"))
E2E_JOBS = int(os.environ.get("BENCH_JOBS", "3000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))


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


def write_report(submit: dict, e2e: dict) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    section = f"""<!-- BENCH:START -->
Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, {os.cpu_count()} cores,
{platform.platform()}. Command: `make bench` (BENCH_SUBMITS={SUBMITS} BENCH_JOBS={E2E_JOBS}
BENCH_CONNECTIONS={CONNECTIONS}). Load generator, api, broker, Redis and workers share the machine.

| measure | result |
|---|---|
| submit rate (POST /v1/jobs -> 202, no consumer), {submit['count']} jobs, {CONNECTIONS} connections | **{submit['rate']:.0f} jobs/s**, client latency p50 {submit['p50_ms']:.1f} ms, p99 {submit['p99_ms']:.1f} ms |
| end-to-end echo, {e2e['count']} jobs, 1 native + 1 Python worker (concurrency 16 each) | **{e2e['rate']:.0f} jobs/s** ({e2e['succeeded']} succeeded), created -> finished p50 {e2e['p50_ms']:.0f} ms, p99 {e2e['p99_ms']:.0f} ms |
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
    print(write_report(submit, e2e))


if __name__ == "__main__":
    main()
