"""Sluice benchmark suite: `make bench` runs every figure, `make bench FIGURES="submit status"`
some of them. Each figure starts its own pipeline (Redis with AOF on, broker, api, workers) on
free ports, runs BENCH_RUNS times (3) and reports the median with min-max; the load generator
(wrk, or the small asyncio clients below) runs on the same 2-core machine.

Figures:
  submit      POST /v1/jobs -> 202 (durably in Redis), wrk -t1 -c64, no consumer
  submit-auth the same with SLUICE_AUTH=required, a member API key on every request
  submit-apis the same through HAProxy (deploy/haproxy.cfg) in front of 1 and of 2 apis, beside
              the api alone, with each process's CPU use
  submit-durability  the submit figure with appendfsync everysec (shipped), appendfsync always,
              and everysec with a replica and SLUICE_REDIS_MIN_REPLICAS=1 (README, How durable a
              202 is); the replica and its sentinels run on the same machine
  e2e-native  jobs/s from first submit to last result in Redis, native echo worker draining
  e2e-python  the same with one Python worker process
  e2e-scale   e2e-native and e2e-python with 1, 2 and 4 worker processes, and each part's cores
  curve       submit and e2e-native with CURVE off and on
  failover    a leader broker SIGKILLed beside a standby: time to the standby leading and to
              the first job submitted after the kill finishing
  status      GET /v1/jobs/{id}, wrk -c64: a finished job, and a job queued behind 100k others
  latency     one client, one job at a time: submit, then the completion event over SSE
  sse         many SSE clients each watching its own job: completion delivery and api memory
  ws          the same with WebSocket clients (GET /v1/ws), one job subscribed per connection
  growth      submit rate with few vs 1M jobs retained; memory under sustained overload (429)
  stream      chunk latency from ctx.emit() to an SSE client
  chat        the embedded model through the pipeline: first token, tokens/s
  quality     answer quality of sentiment, entities and summarize on bench/quality (quality.py)
              through the pipeline: the embedded model, and an OpenAI-compatible one if configured

Writes the table to bench/RESULTS.md (between the BENCH markers) and prints it.
"""
from __future__ import annotations

import asyncio
import collections
import datetime
import http.client
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from pipeline import Pipeline, iter_sse, wait_for_line  # noqa: E402

import quality  # noqa: E402  (bench/quality.py, beside this file)

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
LATENCY_JOBS = int(os.environ.get("BENCH_LATENCY_JOBS", "1000"))
SSE_CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", "10000"))
GROWTH_JOBS = int(os.environ.get("BENCH_GROWTH_JOBS", "1000000"))
STREAMS, CHUNKS, CHATS = 8, 100, 3
WRK_POST = ROOT / "bench" / "wrk_post.lua"
# Deep enough that no figure meets the 429 limit unless it means to.
NO_LIMIT = {"SLUICE_MAX_QUEUE_DEPTH": "100000000"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def wrk(url: str, seconds: int, script: Path | None = None, connections: int = CONNECTIONS,
        env: dict | None = None) -> dict:
    """Runs wrk (with `env` added to its environment, which its script may read); returns
    requests/s, p50/p99 in ms and the count of non-2xx answers."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        argv[1:1] = ["-s", str(script)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}).stdout

    def ms(label):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50%"),
            "p99_ms": ms("99%"), "errors": int(non2xx.group(1)) if non2xx else 0}


def declare(p: Pipeline, job_type: str = "echo") -> None:
    """Makes `job_type` known (a worker declares it, then leaves), so jobs queue with no consumer."""
    worker = p.start_worker("native")
    p.wait_ready(job_type)
    p.stop_process(worker)


def queued(p: Pipeline) -> int:
    with p.redis_client() as redis:
        return int(redis.call("ZCARD", "sluice:queue:echo"))


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def job_times(p: Pipeline) -> list[tuple[int, int, bytes]]:
    """(created_ms, finished_ms, status) of every job in Redis."""
    with p.redis_client() as redis:
        keys, cursor = [], b"0"
        while True:
            cursor, batch = redis.call("SCAN", cursor, "MATCH", "sluice:job:*", "COUNT", 10000)
            keys += batch
            if cursor == b"0":
                break
        rows = []
        for start in range(0, len(keys), 10000):
            rows += redis.pipeline([["HMGET", k, "created_ms", "finished_ms", "status"] for k in keys[start:start + 10000]])
    return [(int(c), int(f or 0), s) for c, f, s in rows]


# ---- figures --------------------------------------------------------------------------------

def fig_submit(workdir: Path, curve: bool = True) -> dict:
    p = Pipeline(workdir, curve=curve).start(**NO_LIMIT)
    try:
        declare(p)
        result = wrk(p.url + "/v1/jobs", SECONDS, WRK_POST)
        assert result["errors"] == 0, result
        return result
    finally:
        p.stop()


def fig_submit_auth(workdir: Path) -> dict:
    """The submit figure with SLUICE_AUTH=required and a member key on every request."""
    admin_key = "b" * 40
    p = Pipeline(workdir)
    p.env.update(SLUICE_AUTH="required", SLUICE_ADMIN_KEY=admin_key)
    p.start(**NO_LIMIT)
    try:
        declare(p)
        made = p.http.post("/v1/admin/keys", json={"tenant": "bench", "role": "member", "name": "bench"},
                           headers={"Authorization": f"Bearer {admin_key}"})
        result = wrk(p.url + "/v1/jobs", SECONDS, WRK_POST, env={"SLUICE_BENCH_KEY": made.json()["key"]})
        assert result["errors"] == 0, result
        return result
    finally:
        p.stop()


def drain(workdir: Path, kind: str, processes: int = 1, curve: bool = True) -> dict:
    """Submits for 5 s with wrk while `processes` workers of `kind` (concurrency 64 each) drain;
    the rate over the span from the first job created to the last finished, and the cores each
    part used from the first submit to the last result (CPU seconds per second)."""
    p = Pipeline(workdir, curve=curve).start(**NO_LIMIT)
    try:
        names = [f"drainer-{i}" for i in range(1, processes + 1)]
        for name in names:
            p.start_worker(kind, concurrency=64, name=name)
        p.wait_workers(*names)
        parts = collections.defaultdict(list)
        for name, proc in p.procs:
            if proc.poll() is None:
                parts[name.split("-")[0]].append(proc.pid)
        before = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in parts.items()}
        started = time.monotonic()
        submitted = wrk(p.url + "/v1/jobs", 5, WRK_POST)
        assert submitted["errors"] == 0, submitted
        deadline = time.monotonic() + 300
        while True:
            rows = job_times(p)
            if all(status == b"succeeded" for _, _, status in rows) or time.monotonic() > deadline:
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        done = [(c, f) for c, f, status in rows if status == b"succeeded"]
        assert len(done) == len(rows), f"{len(rows) - len(done)} jobs unfinished"
        span = (max(f for _, f in done) - min(c for c, _ in done)) / 1000
        cores = {f"{name}_cores": (sum(cpu_seconds(pid) for pid in pids) - before[name]) / elapsed
                 for name, pids in parts.items()}
        return {"rate": len(done) / span, "jobs": len(done), "submit_rate": submitted["rate"], **cores}
    finally:
        p.stop()


def fig_e2e_native(workdir: Path) -> dict:
    return drain(workdir, "native")


def fig_e2e_python(workdir: Path) -> dict:
    return drain(workdir, "python")


def fig_curve(workdir: Path) -> dict:
    """The submit and e2e-native figures with CURVE off and on, one after the other (every link
    on loopback, where Sluice allows CURVE off)."""
    out = {}
    for label, curve in (("off", False), ("on", True)):
        out[f"submit_{label}"] = fig_submit(workdir / f"submit-{label}", curve)["rate"]
        out[f"e2e_{label}"] = drain(workdir / f"e2e-{label}", "native", curve=curve)["rate"]
    return out


# Worker processes of the e2e-scale figure.
SCALE_PROCESSES = (1, 2, 4)


def fig_e2e_scale(workdir: Path) -> dict:
    """e2e-native and e2e-python with 1, 2 and 4 worker processes, and the cores each part used
    (the profile that says where the limit is)."""
    out = {}
    for kind in ("native", "python"):
        for n in SCALE_PROCESSES:
            for key, value in drain(workdir / f"{kind}-{n}", kind, n).items():
                out[f"{kind}{n}_{key}"] = value
    return out


def fig_failover(workdir: Path) -> dict:
    """A leader and a standby broker (tests/faults/test_standby_broker.py's setup) and a native
    worker; the leader is SIGKILLed and a client submits an echo job every 10 ms until one is
    accepted. Seconds from the kill to the standby's sockets bound, and to the first job
    submitted after the kill finishing."""
    p = Pipeline(workdir).start(standby=True, **NO_LIMIT)
    try:
        p.start_worker("native", concurrency=8, name="native-1")
        p.wait_workers("native-1")
        killed, killed_wall = time.monotonic(), time.time()
        p.brokers["a"].send_signal(signal.SIGKILL)
        p.brokers["a"].wait()
        while True:
            response = p.http.post("/v1/jobs", json={"type": "echo", "input": {"after": True}})
            if response.status_code == 202:
                break
            time.sleep(0.01)
        p.wait_result(response.json()["id"])
        first_job = time.monotonic() - killed
        wait_for_line(p.broker_outputs["b"], r"frontend (\S+) backend (\S+)", p.brokers["b"])
        log = p.broker_outputs["b"].with_suffix(".log").read_text()
        # The standby's log says (wall clock, UTC) when it bound its sockets.
        led_at = re.search(r"^(\S+)Z INFO broker: leading", log, re.M).group(1)
        led = datetime.datetime.fromisoformat(led_at).replace(tzinfo=datetime.timezone.utc).timestamp()
        return {"led_s": led - killed_wall, "first_job_s": first_job}
    finally:
        p.stop()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


# The setups of the submit-apis figure: (label, title).
SUBMIT_APIS = (("alone", "api alone"), ("proxy1", "HAProxy + 1 api"), ("proxy2", "HAProxy + 2 apis"))


DURABILITY = (("everysec", "appendfsync everysec"), ("always", "appendfsync always"),
              ("replica", "everysec + 1 replica, SLUICE_REDIS_MIN_REPLICAS=1"))


def fig_submit_durability(workdir: Path) -> dict:
    """The submit figure with each durability setting in turn, on pipelines of their own."""
    out = {}
    for label, _ in DURABILITY:
        p = Pipeline(workdir / label)
        try:
            if label == "replica":
                p.start_replicated(SLUICE_REDIS_MIN_REPLICAS="1", **NO_LIMIT)
            else:
                p.start(**NO_LIMIT)
                with p.redis_admin() as redis:
                    redis.call("CONFIG", "SET", "appendfsync", label)
            declare(p)
            result = wrk(p.url + "/v1/jobs", SECONDS, WRK_POST)
            assert result["errors"] == 0, (label, result)
            out.update({f"{label}_{key}": result[key] for key in ("rate", "p50_ms", "p99_ms")})
        finally:
            p.stop()
    return out


def fig_submit_apis(workdir: Path) -> dict:
    """The submit figure against the api alone, then through HAProxy in front of one api and of
    two. For each: the rate, and the cores each part used meanwhile (CPU seconds per second of
    the run; the machine's busy share counts other sessions' work too)."""
    out = {}
    for (label, _), apis in zip(SUBMIT_APIS, (1, 1, 2)):
        p = Pipeline(workdir / label)
        p.env["SLUICE_API_TRUSTED_PROXIES"] = "127.0.0.1/32"
        p.start(**NO_LIMIT)
        try:
            declare(p)
            urls = [p.url]
            for _ in range(apis - 1):
                p.start_api()
                urls.append(p.url)
            url = urls[0] if label == "alone" else p.start_haproxy(urls)
            parts = collections.defaultdict(list)
            for name, proc in p.procs:
                if proc.poll() is None and name in ("api", "haproxy", "broker", "redis"):
                    parts[name].append(proc.pid)
            before = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in parts.items()}
            busy_before, children_before = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            result = wrk(url + "/v1/jobs", SECONDS, WRK_POST)
            elapsed = time.monotonic() - started
            busy_after, children_after = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
            assert result["errors"] == 0, result
            out[f"{label}_rate"], out[f"{label}_p99_ms"] = result["rate"], result["p99_ms"]
            for name, pids in parts.items():
                out[f"{label}_{name}_cores"] = (sum(cpu_seconds(pid) for pid in pids) - before[name]) / elapsed
            out[f"{label}_wrk_cores"] = (children_after.ru_utime + children_after.ru_stime
                                         - children_before.ru_utime - children_before.ru_stime) / elapsed
            out[f"{label}_busy_pct"] = 100 * (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1])
            out[f"{label}_ours_cores"] = sum(value for key, value in out.items()
                                             if key.startswith(f"{label}_") and key.endswith("_cores"))
            # CPU per job: what other sessions on the machine take moves it much less than the rate.
            out[f"{label}_cpu_us_per_job"] = out[f"{label}_ours_cores"] / result["rate"] * 1e6
        finally:
            p.stop()
    return out


def fig_status(workdir: Path) -> dict:
    p = Pipeline(workdir).start(**NO_LIMIT)
    try:
        worker = p.start_worker("native")
        p.wait_ready("echo")
        finished = p.submit("echo", {"done": True})["id"]
        p.wait_result(finished)
        p.stop_process(worker)
        # 100k jobs queued ahead of the one looked up.
        while queued(p) < 100000:
            wrk(p.url + "/v1/jobs", 3, WRK_POST)
        waiting = p.submit("echo", {"last": True})["id"]
        assert p.http.get(f"/v1/jobs/{waiting}").json()["status"] == "queued"
        result_finished = wrk(f"{p.url}/v1/jobs/{finished}", SECONDS)
        result_waiting = wrk(f"{p.url}/v1/jobs/{waiting}", SECONDS)
        assert result_finished["errors"] == result_waiting["errors"] == 0
        return {"finished_rate": result_finished["rate"], "finished_p99_ms": result_finished["p99_ms"],
                "waiting_rate": result_waiting["rate"], "waiting_p99_ms": result_waiting["p99_ms"]}
    finally:
        p.stop()


def sequential_ms(request, count: int = LATENCY_JOBS) -> list[float]:
    """Calls request() `count` times one after another; returns each call's time in ms."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        request()
        times.append((time.perf_counter() - started) * 1000)
    return times


def zmq_round_trip_ms(count: int = LATENCY_JOBS) -> list[float]:
    """A bare DEALER -> ROUTER -> DEALER echo over loopback TCP between two threads (pyzmq):
    what one hop of the broker protocol costs before Sluice does anything."""
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}")

    def echo():
        for _ in range(count):
            router.send_multipart(router.recv_multipart())

    thread = threading.Thread(target=echo)
    thread.start()
    times = sequential_ms(lambda: (dealer.send(b"x"), dealer.recv()), count)
    thread.join()
    ctx.destroy(linger=0)
    return times


def fig_latency(workdir: Path) -> dict:
    p = Pipeline(workdir).start()
    try:
        p.start_worker("native", concurrency=4, name="native-1")
        p.wait_workers("native-1")
        host, port = p.url.removeprefix("http://").split(":")
        submit, events = http.client.HTTPConnection(host, int(port)), http.client.HTTPConnection(host, int(port))
        body = json.dumps({"type": "echo", "input": {"x": 1}}).encode()

        def post() -> str:
            submit.request("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
            return json.loads(submit.getresponse().read())["id"]

        def job():
            events.request("GET", f"/v1/jobs/{post()}/events")
            stream = events.getresponse().read()  # the stream ends after the terminal event
            assert b"event: succeeded" in stream

        def healthz():
            submit.request("GET", "/healthz")
            submit.getresponse().read()

        latencies = sequential_ms(job)
        # Where the time goes: the HTTP client and api alone, the 202 alone, one ZMQ hop.
        floor, accepted, hop = sequential_ms(healthz), sequential_ms(post), zmq_round_trip_ms()
        return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                "healthz_p50_ms": percentile(floor, 50), "post_p50_ms": percentile(accepted, 50),
                "zmq_p50_ms": percentile(hop, 50)}
    finally:
        p.stop()


async def open_sse(reader, writer, job_id: str) -> None:
    writer.write(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())


async def open_ws(reader, writer, job_id: str) -> None:
    """Upgrades to GET /v1/ws, waits for the 101 (a client sends no frame before it: RFC 6455,
    4.1), and subscribes with a text frame masked with a zero key (the payload as it is)."""
    writer.write(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    subscribe = json.dumps({"op": "subscribe", "job_id": job_id}).encode()
    assert len(subscribe) < 126
    writer.write(bytes([0x81, 0x80 | len(subscribe), 0, 0, 0, 0]) + subscribe)


# How the `queued` and `succeeded` events of one job show in the bytes each kind of client reads.
SSE_MARKS = (b"event: queued", b"event: succeeded")
WS_MARKS = (b'"event":"queued"', b'"event":"succeeded"')


async def watch(host: str, port: int, job_id: str, connected: asyncio.Event, counter: list, arrivals: dict,
                start=open_sse, marks=SSE_MARKS):
    """One client: counts itself connected at its `queued` event, stamps the arrival of its
    `succeeded` event. Reads whole chunks, not lines or frames: 10,000 of these share a core with
    the pipeline, and per-line reads made the client's own lag part of the figure."""
    reader, writer = await asyncio.open_connection(host, port)
    await start(reader, writer, job_id)
    queued_mark, succeeded_mark = marks
    received, seen_queued = b"", False
    while True:
        data = await reader.read(65536)
        if not data:
            break
        received += data
        if not seen_queued and queued_mark in received:
            seen_queued = True
            counter[0] += 1
            if counter[0] == counter[1]:
                connected.set()
        if succeeded_mark in received:
            arrivals[job_id] = time.time() * 1000
            break
    writer.close()


def fig_sse(workdir: Path, start=open_sse, marks=SSE_MARKS) -> dict:
    p = Pipeline(workdir).start(**NO_LIMIT)
    # All the clients come from 127.0.0.1, which holds far more than 4 connections: the last
    # eighth of the slots, kept for clients that hold few, is not theirs.
    p.env["SLUICE_API_MAX_CONNECTIONS"] = str(SSE_CLIENTS * 8 // 7 + 100)
    p.env["SLUICE_API_MAX_CONNECTIONS_PER_CLIENT"] = str(SSE_CLIENTS + 100)
    # The WebSocket clients answer no ping: the idle timeout must outlast the figure.
    p.env["SLUICE_API_WS_IDLE_TIMEOUT_MS"] = "3600000"
    p.stop_process(p.api)
    p.start_api()
    try:
        declare(p)
        jobs = [p.submit("echo", i)["id"] for i in range(SSE_CLIENTS)]
        host, port = p.url.removeprefix("http://").split(":")
        arrivals: dict[str, float] = {}

        async def run():
            connected = asyncio.Event()
            counter = [0, len(jobs)]
            before = rss_kib(p.api.pid)
            tasks = [asyncio.create_task(watch(host, int(port), j, connected, counter, arrivals, start, marks))
                     for j in jobs]
            await asyncio.wait_for(connected.wait(), 300)
            per_connection = (rss_kib(p.api.pid) - before) / len(jobs)
            p.start_worker("native", concurrency=64)
            await asyncio.wait_for(asyncio.gather(*tasks), 300)
            return per_connection

        per_connection = asyncio.run(run())
        with p.redis_client() as redis:
            finished = redis.pipeline([["HGET", f"sluice:job:{j}", "finished_ms"] for j in jobs])
        delays = [arrivals[j] - int(f) for j, f in zip(jobs, finished)]
        # How fast the results came at their fastest: a tail builds up when they come faster
        # than the api and the clients (all on the same cores) deliver them.
        per_window = collections.Counter(int(f) // 100 for f in finished)
        return {"clients": len(arrivals), "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99),
                "kib_per_connection": per_connection, "peak_per_s": max(per_window.values()) * 10}
    finally:
        p.stop()


def fig_ws(workdir: Path) -> dict:
    return fig_sse(workdir, open_ws, WS_MARKS)


def fig_growth(workdir: Path) -> dict:
    p = Pipeline(workdir).start(**NO_LIMIT)
    try:
        declare(p)
        few = wrk(p.url + "/v1/jobs", 5, WRK_POST)
        while queued(p) < GROWTH_JOBS:
            wrk(p.url + "/v1/jobs", 10, WRK_POST)
        many = wrk(p.url + "/v1/jobs", 5, WRK_POST)
        retained = queued(p)
    finally:
        p.stop()
    # Sustained overload against a small queue bound: 429s, and memory that stops growing.
    p = Pipeline(workdir / "overload").start(SLUICE_MAX_QUEUE_DEPTH="50000")
    try:
        declare(p)
        wrk(p.url + "/v1/jobs", 5, WRK_POST)
        broker_before, api_before = rss_kib(p.broker.pid), rss_kib(p.api.pid)
        overload = wrk(p.url + "/v1/jobs", SECONDS, WRK_POST)
        broker_growth = (rss_kib(p.broker.pid) - broker_before) / 1024
        api_growth = (rss_kib(p.api.pid) - api_before) / 1024
    finally:
        p.stop()
    return {"few_rate": few["rate"], "many_rate": many["rate"], "retained": retained,
            "overload_refused": overload["errors"], "broker_growth_mb": broker_growth, "api_growth_mb": api_growth}


def fig_stream(workdir: Path) -> dict:
    p = Pipeline(workdir).start()
    p.env["PYTHONPATH"] = str(ROOT)
    try:
        p.start_worker("python", concurrency=STREAMS, modules=["bench.stream_tasks"])
        p.wait_ready("bench_stream")
        jobs = [p.submit("bench_stream", {"chunks": CHUNKS, "interval_ms": 10, "delay_ms": 1000})["id"]
                for _ in range(STREAMS)]
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
        return {"p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99)}
    finally:
        p.stop()


def fig_chat(workdir: Path) -> dict:
    p = Pipeline(workdir).start()
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
            rates.append((len(chunk_times) - 1) / (chunk_times[-1] - chunk_times[0]))
        return {"first_token_ms": statistics.median(first_token), "tokens_per_s": statistics.median(rates)}
    finally:
        p.stop()


def quality_through_pipeline(workdir: Path, provider: str) -> dict:
    """Scores of the bench/quality set run as jobs on one Python worker using `provider`."""
    p = Pipeline(workdir).start()
    try:
        p.env["SLUICE_MODEL_PROVIDER"] = provider
        p.start_worker("python", concurrency=1)
        p.wait_ready("sentiment")

        async def run(task_name: str, value: dict) -> dict | None:
            job = p.submit(task_name, value)
            answer = p.wait_result(job["id"], timeout=600)
            return answer["result"] if answer["status"] == "succeeded" else None

        return asyncio.run(quality.evaluate(run))
    finally:
        p.stop()


def fig_quality(workdir: Path) -> dict:
    """Flat numbers for measure(): "<provider>_<task>_<score>"; the openai ones only when an
    OpenAI-compatible model is configured (quality.openai_configured)."""
    providers = ["local"] + (["openai"] if quality.openai_configured() else [])
    if len(providers) == 1:
        print("quality: OpenAI-compatible model not configured (set SLUICE_OPENAI_BASE_URL "
              "and SLUICE_OPENAI_MODEL, or an API key)", flush=True)
    flat = {}
    for provider in providers:
        for task_name, scores in quality_through_pipeline(workdir / provider, provider).items():
            flat.update({f"{provider}_{task_name}_{key}": value for key, value in scores.items()})
    return flat


def quality_row(m: dict) -> tuple[str, str]:
    def cells(provider: str) -> str:
        scores = {task_name: {key[len(f"{provider}_{task_name}_"):]: value[0] for key, value in m.items()
                              if key.startswith(f"{provider}_{task_name}_")} for task_name in quality.TASKS}
        return "; ".join(f"{task_name}: {cell}" for task_name, cell in quality.row_cells(scores).items())

    openai = (f"{quality.openai_model_name()}: {cells('openai')}" if "openai_sentiment_accuracy" in m
              else "OpenAI-compatible model: not configured")
    return (f"Answer quality on bench/quality ({', '.join(f'{len(quality.load(t))} {t}' for t in quality.TASKS)} "
            "texts; reported, not asserted)", f"SmolLM2-135M (embedded): {cells('local')}. {openai}")


FIGURES = {"submit": fig_submit, "submit-auth": fig_submit_auth, "submit-apis": fig_submit_apis,
           "submit-durability": fig_submit_durability, "e2e-native": fig_e2e_native, "e2e-python": fig_e2e_python,
           "e2e-scale": fig_e2e_scale, "curve": fig_curve, "failover": fig_failover,
           "status": fig_status, "latency": fig_latency, "sse": fig_sse, "ws": fig_ws, "growth": fig_growth,
           "stream": fig_stream, "chat": fig_chat, "quality": fig_quality}
# Figures that are no target of the issue and whose spread says little: run once.
ONCE = {"chat", "quality"}


def measure(name: str, workdir: Path) -> dict:
    """Runs a figure RUNS times; returns {metric: (median, min, max)}."""
    runs = []
    for i in range(1 if name in ONCE else RUNS):
        runs.append(FIGURES[name](workdir / f"{name}-{i}"))
        print(f"{name} run {i + 1}: {runs[-1]}", flush=True)
    return {key: (statistics.median(r[key] for r in runs), min(r[key] for r in runs), max(r[key] for r in runs))
            for key in runs[0]}


def fmt(m: tuple[float, float, float], unit: str = "", digits: int = 0) -> str:
    median, low, high = m
    if low == high:
        return f"{median:,.{digits}f}{unit}"
    return f"{median:,.{digits}f}{unit} ({low:,.{digits}f}-{high:,.{digits}f})"


ROWS = {
    "submit": lambda m: ("Submit: >= 40,000 jobs/s at 64 connections, p99 < 5 ms",
                         f"{fmt(m['rate'], '/s')}, p50 {fmt(m['p50_ms'], ' ms', 2)}, p99 {fmt(m['p99_ms'], ' ms', 2)}"),
    "submit-auth": lambda m: ("Submit with SLUICE_AUTH=required (a member key per request): close to submit",
                              f"{fmt(m['rate'], '/s')}, p50 {fmt(m['p50_ms'], ' ms', 2)}, p99 {fmt(m['p99_ms'], ' ms', 2)}"),
    "submit-apis": lambda m: ("Submit (as above) through HAProxy in front of 1 and 2 apis, beside the api alone",
                              "; ".join(f"{title} {fmt(m[label + '_rate'], '/s')}, p99 {fmt(m[label + '_p99_ms'], ' ms', 2)}"
                                        for label, title in SUBMIT_APIS)
                              + "; machine busy " + " / ".join(fmt(m[label + "_busy_pct"], "%") for label, _ in SUBMIT_APIS)
                              + ", of it these parts " + " / ".join(fmt(m[label + "_ours_cores"], "", 2)
                                                                    for label, _ in SUBMIT_APIS)
                              + f" of {os.cpu_count()} cores (HAProxy "
                              + " / ".join(fmt(m[label + "_haproxy_cores"], "", 2) for label, _ in SUBMIT_APIS[1:])
                              + "); their CPU per job " + " / ".join(fmt(m[label + "_cpu_us_per_job"], " us")
                                                                     for label, _ in SUBMIT_APIS)),
    "submit-durability": lambda m: ("Submit (as above) with each durability setting (README, How durable a 202 is)",
                                    "; ".join(f"{title} {fmt(m[label + '_rate'], '/s')}, p50 "
                                              f"{fmt(m[label + '_p50_ms'], ' ms', 2)}, p99 {fmt(m[label + '_p99_ms'], ' ms', 2)}"
                                              for label, title in DURABILITY)),
    "e2e-native": lambda m: ("End to end, native echo worker: >= 20,000 jobs/s",
                             f"{fmt(m['rate'], '/s')} ({fmt(m['jobs'])} jobs submitted at {fmt(m['submit_rate'], '/s')})"),
    "e2e-python": lambda m: ("End to end, one Python worker process: >= 8,000 jobs/s",
                             f"{fmt(m['rate'], '/s')} ({fmt(m['jobs'])} jobs submitted at {fmt(m['submit_rate'], '/s')})"),
    "e2e-scale": lambda m: ("End to end with 1, 2 and 4 worker processes (concurrency 64 each), and the cores each part used",
                            "; ".join(f"{kind} " + " / ".join(fmt(m[f'{kind}{n}_rate'], '/s') for n in SCALE_PROCESSES)
                                      + " (cores: workers " + " / ".join(fmt(m[f'{kind}{n}_worker_cores'], '', 2)
                                                                       for n in SCALE_PROCESSES)
                                      + ", broker " + " / ".join(fmt(m[f'{kind}{n}_broker_cores'], '', 2)
                                                                 for n in SCALE_PROCESSES)
                                      + ", api " + " / ".join(fmt(m[f'{kind}{n}_api_cores'], '', 2) for n in SCALE_PROCESSES)
                                      + ", redis " + " / ".join(fmt(m[f'{kind}{n}_redis_cores'], '', 2)
                                                                for n in SCALE_PROCESSES) + ")"
                                      for kind in ("native", "python"))),
    "curve": lambda m: ("The cost of CURVE: submit and e2e-native with CURVE off, then on (loopback)",
                        f"submit {fmt(m['submit_off'], '/s')} off, {fmt(m['submit_on'], '/s')} on; e2e-native "
                        f"{fmt(m['e2e_off'], '/s')} off, {fmt(m['e2e_on'], '/s')} on"),
    "failover": lambda m: ("Standby broker: the leader SIGKILLed, the standby leads within about 3 s",
                           f"standby bound its sockets {fmt(m['led_s'], ' s', 2)} after the kill; the first job "
                           f"submitted after the kill finished {fmt(m['first_job_s'], ' s', 2)} after it (lease 2 s)"),
    "status": lambda m: ("Status lookups: >= 50,000 req/s at 64 connections, finished or waiting",
                         f"finished {fmt(m['finished_rate'], '/s')} (p99 {fmt(m['finished_p99_ms'], ' ms', 2)}); "
                         f"behind 100k queued {fmt(m['waiting_rate'], '/s')} (p99 {fmt(m['waiting_p99_ms'], ' ms', 2)})"),
    "latency": lambda m: ("Light load, submit -> completion event: p50 < 0.5 ms, p99 < 2 ms",
                          f"p50 {fmt(m['p50_ms'], ' ms', 2)}, p99 {fmt(m['p99_ms'], ' ms', 2)} ({LATENCY_JOBS} jobs one at a time); "
                          f"p50 of parts: GET /healthz {fmt(m['healthz_p50_ms'], ' ms', 2)}, POST alone (202) "
                          f"{fmt(m['post_p50_ms'], ' ms', 2)}, one bare ZMQ round trip {fmt(m['zmq_p50_ms'], ' ms', 2)}"),
    "sse": lambda m: (f"Event push to {SSE_CLIENTS:,} SSE clients: p99 < 50 ms after the result is written, <= 4 KiB per connection",
                      f"p50 {fmt(m['p50_ms'], ' ms')}, p99 {fmt(m['p99_ms'], ' ms')}, {fmt(m['kib_per_connection'], ' KiB', 2)} "
                      f"of api RSS per connection ({fmt(m['clients'])} clients got their event; results written at up to "
                      f"{fmt(m['peak_per_s'], '/s')} over 100 ms)"),
    "ws": lambda m: (f"Event push to {SSE_CLIENTS:,} WebSocket clients, one job each: beside the SSE row",
                     f"p50 {fmt(m['p50_ms'], ' ms')}, p99 {fmt(m['p99_ms'], ' ms')}, {fmt(m['kib_per_connection'], ' KiB', 2)} "
                     f"of api RSS per connection ({fmt(m['clients'])} clients got their event; results written at up to "
                     f"{fmt(m['peak_per_s'], '/s')} over 100 ms)"),
    "growth": lambda m: ("Growth: submit rate flat (20%) from few to 1M jobs retained; memory bounded in overload",
                         f"{fmt(m['few_rate'], '/s')} with few, {fmt(m['many_rate'], '/s')} with {fmt(m['retained'])} retained; "
                         f"overload: {fmt(m['overload_refused'])} answered 429, broker RSS {fmt(m['broker_growth_mb'], ' MB', 1)}, "
                         f"api RSS {fmt(m['api_growth_mb'], ' MB', 1)} growth over {SECONDS} s"),
    "stream": lambda m: (f"Streaming: ctx.emit() -> SSE client ({STREAMS} streams x {CHUNKS} chunks)",
                         f"p50 {fmt(m['p50_ms'], ' ms', 1)}, p99 {fmt(m['p99_ms'], ' ms', 1)}"),
    "chat": lambda m: (f"`chat` on the embedded SmolLM2-135M ({CHATS} jobs, 128 tokens)",
                       f"first token after {fmt(m['first_token_ms'], ' ms')} (submit included), {fmt(m['tokens_per_s'], ' tokens/s')}"),
    "quality": quality_row,
}


def write_report(results: dict[str, dict]) -> str:
    """Replaces the rows of the figures measured now; rows of the others stay as they were."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results_md = ROOT / "bench" / "RESULTS.md"
    text = results_md.read_text()
    start, end = text.index("<!-- BENCH:START -->"), text.index("<!-- BENCH:END -->") + len("<!-- BENCH:END -->")
    rows = {m.group(1): line for line in text[start:end].splitlines()
            if (m := re.search(r"`make bench FIGURES=([\w-]+)`", line))}
    stamp = f"{time.strftime('%Y-%m-%d', time.gmtime())}, {commit}"
    for name, metrics in results.items():
        target, measured = ROWS[name](metrics)
        rows[name] = f"| {target} | {measured} | {stamp} | `make bench FIGURES={name}` |"
    lines = [f"| target | measured: median (min-max) of {RUNS} runs | when, commit | command |", "|---|---|---|---|"]
    lines += [rows[name] for name in FIGURES if name in rows]
    section = "\n".join([
        "<!-- BENCH:START -->",
        f"{os.cpu_count()} cores, {platform.platform()}; load generator on the same machine. "
        f"Settings: BENCH_RUNS={RUNS} BENCH_SECONDS={SECONDS} "
        f"BENCH_CONNECTIONS={CONNECTIONS} BENCH_LATENCY_JOBS={LATENCY_JOBS} BENCH_SSE_CLIENTS={SSE_CLIENTS} "
        f"BENCH_GROWTH_JOBS={GROWTH_JOBS}.",
        "",
        *lines,
        "<!-- BENCH:END -->"])
    results_md.write_text(text[:start] + section + text[end:])
    return section


def main() -> None:
    names = sys.argv[1:] or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        sys.exit(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        results = {name: measure(name, Path(tmp)) for name in names}
    print(write_report(results))


if __name__ == "__main__":
    main()
