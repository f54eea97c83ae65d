"""Runs the real pipeline for tests and benchmarks: redis-server, broker, api and workers as
separate processes on free ports, with a throwaway Redis data directory, and CURVE on every
ZeroMQ link (keys made for the run; Pipeline(..., curve=False) for none)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import websockets.sync.client
import zmq
from sluice import protocol
from sluice.curve import read_key

from resp import Redis, RedisError

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SLUICE_BUILD_DIR", ROOT / "build"))
VENV_BIN = ROOT / ".venv" / "bin"
TERMINAL = {"succeeded", "failed", "canceled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 15.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            match = re.search(pattern, path.read_text())
            if match:
                return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {path.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"no '{pattern}' in {path}")


def next_job(worker: zmq.Socket, timeout_ms: int = 10_000) -> protocol.Job:
    """The next JOB a worker of the test's own receives (heartbeats may come first)."""
    while True:
        assert worker.poll(timeout_ms), "no JOB"
        msg = protocol.decode(worker.recv_multipart())
        if isinstance(msg, protocol.Job):
            return msg


def process_rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MiB, from /proc/PID/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def running_pipeline(workdir: Path, failed=lambda: False, env: dict | None = None, **broker_env: str):
    """Starts Redis, broker and api in `workdir` (extra `env` for every process, `broker_env`
    for the broker); on exit stops everything, prints the logs if `failed()`, removes workdir."""
    p = Pipeline(workdir)
    p.env.update(env or {})
    try:
        p.start(**broker_env)
        yield p
    finally:
        p.stop()
        if failed():
            print(p.logs())
        shutil.rmtree(workdir, ignore_errors=True)


# -- CURVE keys (README.md, Security) ------------------------------------------------------
# Passed as a component's extra environment, starts it without keys (for the attack tests).
NO_KEYS = {"SLUICE_CURVE_SECRET_KEY_FILE": "", "SLUICE_BROKER_PUBLIC_KEY_FILE": "",
           "SLUICE_API_KEYS_FILE": "", "SLUICE_WORKER_KEYS_FILE": ""}


def make_keys(directory: Path) -> Path:
    """Makes keypairs broker.key/.pub, api.key/.pub and worker.key/.pub with sluice-keygen in a new
    0700 `directory`, and the broker's allow-lists api-keys and worker-keys; returns it."""
    directory.mkdir(mode=0o700, parents=True)
    for name in ("broker", "api", "worker"):
        subprocess.run([str(BUILD / "common" / "sluice-keygen"), str(directory / name)], check=True,
                       stdout=subprocess.DEVNULL)
        if name != "broker":
            (directory / f"{name}-keys").write_text((directory / f"{name}.pub").read_text())
    return directory


class Pipeline:
    """One running Sluice: start() brings up Redis, broker and api; workers are added per test."""

    def __init__(self, workdir: Path, curve: bool = True):
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.workers: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        self.keys = make_keys(workdir / "keys") if curve else None

    def keys_env(self, component: str) -> dict[str, str]:
        """The key files of `component` ("broker", "api" or "worker"); none without CURVE."""
        if self.keys is None:
            return {}
        if component == "broker":
            return {"SLUICE_CURVE_SECRET_KEY_FILE": str(self.keys / "broker.key"),
                    "SLUICE_API_KEYS_FILE": str(self.keys / "api-keys"),
                    "SLUICE_WORKER_KEYS_FILE": str(self.keys / "worker-keys")}
        return {"SLUICE_CURVE_SECRET_KEY_FILE": str(self.keys / f"{component}.key"),
                "SLUICE_BROKER_PUBLIC_KEY_FILE": str(self.keys / "broker.pub")}

    def allow(self, sock: zmq.Socket, component: str = "worker") -> zmq.Socket:
        """Gives a test's own socket the allowed keys of `component` ("api" or "worker") and the
        broker's public key, before it connects; no-op without CURVE. Returns `sock`."""
        if self.keys is not None:
            sock.curve_secretkey = read_key(self.keys / f"{component}.key")
            sock.curve_publickey = read_key(self.keys / f"{component}.pub")
            sock.curve_serverkey = read_key(self.keys / "broker.pub")
        return sock

    def own_worker(self, context: zmq.Context, name: str, types: list[str],
                   schemas: list[str] | None = None) -> zmq.Socket:
        """A worker of the test's own: a DEALER with the allowed worker key, connected, that has
        said READY for `types` with one slot (and `schemas`, parallel to them: none by default).
        Read its JOBs with next_job()."""
        sock = self.allow(context.socket(zmq.DEALER))
        sock.linger = 0
        sock.connect(self.backend)
        sock.send_multipart(protocol.encode(protocol.Ready(name, "python", types, 1,
                                                          schemas if schemas is not None else [""] * len(types))))
        return sock

    # -- processes ---------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict) -> tuple[subprocess.Popen, Path]:
        out = self.workdir / f"{name}-{len(self.procs)}.out"
        err = self.workdir / f"{name}-{len(self.procs)}.log"
        proc = subprocess.Popen(argv, env=env, stdout=out.open("w"), stderr=err.open("w"))
        self.procs.append((name, proc))
        return proc, out

    def start(self, standby: bool = False, **broker_env: str) -> "Pipeline":
        """Starts Redis, the broker (with `standby`, a leader and a standby: start_broker_pair)
        and an api."""
        self.redis_port = free_port()
        (self.workdir / "redis").mkdir(parents=True, exist_ok=True)
        self.make_redis_login()
        self.start_redis()
        self.env.update(SLUICE_REDIS_HOST="127.0.0.1", SLUICE_REDIS_PORT=str(self.redis_port),
                        SLUICE_LOG_LEVEL="info")
        if standby:
            self.start_broker_pair(**broker_env)
        else:
            self.start_broker(**broker_env)
        self.start_api()
        return self

    # -- Redis login (scripts/redis-auth.sh, as `make run` does) ---------------------------
    def make_redis_login(self) -> None:
        """Makes the password and users file in workdir/secrets; the broker and the api get the
        password file's path."""
        self.secrets = self.workdir / "secrets"
        subprocess.run([str(ROOT / "scripts" / "redis-auth.sh"), str(self.secrets)], check=True)
        self.redis_password = (self.secrets / "redis-password").read_text().strip()
        self.env.update(SLUICE_REDIS_USER="sluice", SLUICE_REDIS_PASSWORD_FILE=str(self.secrets / "redis-password"))

    def redis_client(self) -> Redis:
        """A connection to this pipeline's Redis, logged in as the user Sluice uses."""
        return Redis(self.redis_port, password=self.redis_password)

    def redis_admin(self) -> Redis:
        """A connection logged in as the operator's `admin` user (CONFIG and the like)."""
        return Redis(self.redis_port, user="admin", password=(self.secrets / "redis-admin-password").read_text().strip())

    def start_redis(self, wait: bool = True) -> None:
        """Starts redis-server on self.redis_port with the project config and the login (again
        after a kill: same port, same data directory, so the AOF is replayed); with `wait`,
        returns once it answers PING (its data loaded)."""
        self.redis, _ = self._spawn("redis", [
            "redis-server", str(ROOT / "config" / "redis.conf"), "--include", str(self.secrets / "redis-users.conf"),
            "--port", str(self.redis_port), "--dir", str(self.workdir / "redis"),
            "--logfile", str(self.workdir / "redis.log")], self.env)
        if not wait:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RedisError), self.redis_client() as redis:
                if redis.call("PING") == "PONG":
                    return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    # -- Redis Sentinel (README.md, Redis failover) ----------------------------------------
    def start_replicated(self, sentinels: int = 3, **broker_env: str) -> "Pipeline":
        """Like start(), with a master (self.redis, self.redis_port), one replica
        (self.replica, self.replica_port) and `sentinels` sentinels (self.sentinel_ports) on free
        ports; the broker and the api find the master through the sentinels."""
        self.make_redis_login()
        self.redis_port, self.replica_port = free_port(), free_port()
        self.redis = self.start_redis_node("redis-a", self.redis_port)
        self.replica = self.start_redis_node("redis-b", self.replica_port, replica_of=self.redis_port)
        self.wait_replica_synced(self.replica_port)
        self.sentinel_ports = [self.start_sentinel(i) for i in range(sentinels)]
        self.wait_sentinels(replicas=1)
        self.env.update(SLUICE_REDIS_SENTINELS=",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
                        SLUICE_LOG_LEVEL="info")
        self.start_broker(**broker_env)
        self.start_api()
        return self

    def start_redis_node(self, name: str, port: int, replica_of: int | None = None) -> subprocess.Popen:
        """Starts a Redis of a replicated set, `name` its data directory and config file in
        workdir (again after a kill: same port, same data). Each has a config file of its own,
        which a sentinel rewrites on a failover, and logs in to its master as user `replica`.
        Returns once it answers PING."""
        config = self.workdir / f"{name}.conf"
        if not config.exists():
            shutil.copy(ROOT / "config" / "redis.conf", config)
        (self.workdir / name).mkdir(exist_ok=True)
        argv = ["redis-server", str(config), "--include", str(self.secrets / "redis-users.conf"),
                "--include", str(self.secrets / "redis-replication.conf"), "--port", str(port),
                "--dir", str(self.workdir / name), "--logfile", str(self.workdir / f"{name}.log")]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        proc, _ = self._spawn(name, argv, self.env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RedisError), Redis(port, password=self.redis_password) as redis:
                if redis.call("PING") == "PONG":
                    return proc
            time.sleep(0.05)
        raise TimeoutError(f"{name} did not start")

    def wait_replica_synced(self, port: int, timeout: float = 30.0) -> None:
        """Waits until the replica at `port` holds its master's data and follows its stream
        (a master delays a new replica's first sync by repl-diskless-sync-delay, 5 s)."""
        deadline = time.monotonic() + timeout
        with Redis(port, password=self.redis_password) as replica:
            while b"master_link_status:up" not in replica.call("INFO", "replication"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the replica at {port} never synced")
                time.sleep(0.1)

    def start_sentinel(self, index: int, down_after_ms: int = 1000) -> int:
        """Starts a redis-sentinel watching the master at self.redis_port, with its config made
        by scripts/sentinel-conf.sh; returns its port. A master silent for `down_after_ms` is
        failed over."""
        port = free_port()
        config = self.workdir / f"sentinel-{index}.conf"
        subprocess.run([str(ROOT / "scripts" / "sentinel-conf.sh"), str(self.secrets), str(config), "127.0.0.1",
                        str(self.redis_port), str(down_after_ms)], check=True)
        self._spawn("sentinel", ["redis-sentinel", str(config), "--port", str(port)], self.env)
        return port

    def sentinel_admin(self, port: int) -> Redis:
        """A connection to the sentinel at `port` as its `sentinel` user (may run everything)."""
        return Redis(port, user="sentinel", password=(self.secrets / "redis-sentinel-password").read_text().strip())

    def wait_sentinels(self, replicas: int, timeout: float = 30.0) -> None:
        """Waits until every sentinel knows the master, `replicas` replicas of it and every
        other sentinel (until then a failover could not happen)."""
        deadline = time.monotonic() + timeout
        while True:
            ready = 0
            for port in self.sentinel_ports:
                with contextlib.suppress(OSError, RedisError), self.sentinel_admin(port) as sentinel:
                    fields = sentinel.call("SENTINEL", "MASTER", "sluice")
                    info = dict(zip(fields[::2], fields[1::2]))
                    if (int(info[b"num-slaves"]) >= replicas
                            and int(info[b"num-other-sentinels"]) == len(self.sentinel_ports) - 1):
                        ready += 1
            if ready == len(self.sentinel_ports):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready} of {len(self.sentinel_ports)} sentinels ready")
            time.sleep(0.1)

    def sentinel_master(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(OSError, RedisError), self.sentinel_admin(port) as sentinel:
                host_port = sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice")
                if host_port:
                    return int(host_port[1])
        return None

    def start_broker(self, same_endpoints: bool = False, leads: bool = True, **extra: str) -> None:
        """Starts the broker on free loopback ports, or with `same_endpoints` where the last one
        was; an endpoint in `extra` (SLUICE_BROKER_WORKER_ENDPOINT="tcp://10.231.0.1:*") wins.
        Returns once it leads (its endpoints bound), or without `leads` (it cannot win the lease:
        a wrong Redis password, say) once it runs."""
        fresh = {} if same_endpoints else {"SLUICE_BROKER_API_ENDPOINT": "tcp://127.0.0.1:*",
                                           "SLUICE_BROKER_WORKER_ENDPOINT": "tcp://127.0.0.1:*"}
        env = {**self.env, **fresh, **self.keys_env("broker"), **extra}
        self.broker, out = self._spawn("broker", [str(BUILD / "broker" / "sluice-broker")], env)
        if not leads:
            wait_for_line(out.with_suffix(".log"), r"standing by for the lease", self.broker)
            return
        match = wait_for_line(out, r"frontend (\S+) backend (\S+)", self.broker)
        self.frontend, self.backend = match.group(1), match.group(2)
        self.env.update(SLUICE_BROKER_API_ENDPOINT=self.frontend, SLUICE_BROKER_WORKER_ENDPOINT=self.backend)

    def start_broker_pair(self, **extra: str) -> None:
        """Starts brokers `a` and `b` (SLUICE_BROKER_ID broker-a, broker-b) on free loopback ports,
        with one keypair, sharing this Redis: `a` first, so it leads (its endpoints line is waited
        for), then `b`, which stands by (its log says so). self.brokers has both by name,
        self.frontends/self.backends their endpoints in that order, self.broker is `a`, and apis
        and workers started from now on get both endpoints."""
        self.brokers: dict[str, subprocess.Popen] = {}
        self.broker_outputs: dict[str, Path] = {}
        self.frontends, self.backends = [], []
        for name in ("a", "b"):
            frontend, backend = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
            env = {**self.env, **self.keys_env("broker"), "SLUICE_BROKER_ID": f"broker-{name}",
                   "SLUICE_BROKER_API_ENDPOINT": frontend, "SLUICE_BROKER_WORKER_ENDPOINT": backend, **extra}
            proc, out = self._spawn(f"broker-{name}", [str(BUILD / "broker" / "sluice-broker")], env)
            self.brokers[name], self.broker_outputs[name] = proc, out
            self.frontends.append(frontend)
            self.backends.append(backend)
            if name == "a":
                wait_for_line(out, r"frontend (\S+) backend (\S+)", proc)
            else:
                wait_for_line(out.with_suffix(".log"), r"standing by: broker lease held by", proc)
        self.broker = self.brokers["a"]
        self.frontend, self.backend = self.frontends[0], self.backends[0]
        self.env.update(SLUICE_BROKER_API_ENDPOINT=",".join(self.frontends),
                        SLUICE_BROKER_WORKER_ENDPOINT=",".join(self.backends))

    def start_api(self, **extra: str) -> None:
        self.api, self.url = self.start_extra_api(**extra)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start_extra_api(self, **extra: str) -> tuple[subprocess.Popen, str]:
        """Starts an api on a free port with `extra` environment on top; returns it and its URL.
        Stopped with the rest; start_api() makes it the pipeline's own."""
        env = {**self.env, "SLUICE_API_PORT": "0", **self.keys_env("api"), **extra}
        proc, out = self._spawn("api", [str(BUILD / "api" / "sluice-api")], env)
        return proc, wait_for_line(out, r"listening on (http://\S+)", proc).group(1)

    def start_haproxy(self, apis: list[str], **extra: str) -> str:
        """Starts HAProxy with the committed deploy/haproxy.cfg on a free port in front of
        `apis` (their URLs; servers api-1, api-2, ... in its log), `extra` its environment
        (SLUICE_PROXY_MAX_CONNECTIONS_PER_CLIENT, ...). Returns its URL once a request through
        it reaches an api that is ready (GET /readyz)."""
        servers = self.workdir / "haproxy-apis.cfg"
        servers.write_text("backend apis\n" + "".join(f"    server api-{i} {url.removeprefix('http://')}\n"
                                                      for i, url in enumerate(apis, 1)))
        port = free_port()
        env = {**self.env, "SLUICE_PROXY_BIND": f"127.0.0.1:{port}", **extra}
        self.haproxy, _ = self._spawn("haproxy", ["haproxy", "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg"),
                                                  "-f", str(servers)], env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return url
            if self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.haproxy.returncode}: {self.haproxy_log()}")
            time.sleep(0.05)
        raise TimeoutError(f"no api ready behind HAProxy: {self.haproxy_log()}")

    def haproxy_log(self) -> str:
        """What HAProxy has said (its log goes to stdout, its warnings to stderr)."""
        return "".join(path.read_text() for pattern in ("haproxy-*.out", "haproxy-*.log")
                       for path in sorted(self.workdir.glob(pattern)))

    def add_task_modules(self) -> None:
        """Lets Python workers started from now on import the task modules beside this file
        (big_tasks, typed_tasks), ahead of what PYTHONPATH already holds (the sluice package of
        the checkout under test, say)."""
        here = str(Path(__file__).resolve().parent)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))

    def start_worker(self, kind: str = "python", concurrency: int = 4, name: str | None = None,
                     modules: list[str] | None = None, netns: str | None = None, **extra: str) -> subprocess.Popen:
        """Starts a worker with the allowed worker key (`extra` may name other key files), in the
        network namespace `netns` (`ip netns exec`, which execs it: the Popen is the worker)."""
        env = {**self.env, "SLUICE_WORKER_CONCURRENCY": str(concurrency), **self.keys_env("worker"), **extra}
        if name:
            env["SLUICE_WORKER_NAME"] = name
        if kind == "python":
            argv = [str(VENV_BIN / "sluice-worker"), *(modules or []), "--concurrency", str(concurrency)]
            if name:
                argv += ["--name", name]
        else:
            argv = [str(BUILD / "workers" / "sluice-worker-native")]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        proc, _ = self._spawn(f"worker-{kind}", argv, env)
        self.workers.append(proc)
        return proc

    def start_webhooks(self, **extra: str) -> subprocess.Popen:
        """Starts a webhook deliverer (python -m sluice.webhooks, as `sluice-webhooks`); returns
        once it reads the delivery stream."""
        proc, out = self._spawn("webhooks", [str(VENV_BIN / "python"), "-m", "sluice.webhooks"], {**self.env, **extra})
        wait_for_line(out, r"delivering from", proc)
        return proc

    def member_keys(self, admin_key: str, *tenants: str) -> dict[str, dict]:
        """Makes a member key of each tenant with the admin key; returns tenant -> the headers
        that send it."""
        keys = {}
        for tenant in tenants:
            made = self.http.post("/v1/admin/keys", json={"tenant": tenant, "role": "member", "name": tenant},
                                  headers={"Authorization": f"Bearer {admin_key}"})
            assert made.status_code == 201, made.text
            keys[tenant] = {"Authorization": f"Bearer {made.json()['key']}"}
        return keys

    def wait_ready(self, job_type: str, timeout: float = 15.0) -> None:
        """Waits until a worker has declared job_type (a submit stops answering 422)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.redis_client() as redis:
                if job_type.encode() in redis.call("SMEMBERS", "sluice:types"):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"no worker declared {job_type}")

    def broker_log(self) -> str:
        return "".join(path.read_text() for path in sorted(self.workdir.glob("broker-*.log")))

    def wait_workers(self, *names: str, timeout: float = 15.0) -> None:
        """Waits until the broker has logged each named worker as ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.broker_log()
            if all(f"worker {name} (" in text for name in names):
                return
            time.sleep(0.05)
        raise TimeoutError(f"workers {names} never became ready")

    def stop_process(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def api_address(self) -> tuple[str, int]:
        """The api's (host, port), for tests that talk raw TCP."""
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def api_rss_mb(self) -> float:
        """The api process's resident set size in MiB (VmRSS from /proc)."""
        return process_rss_mb(self.api.pid)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")) + sorted(self.workdir.glob("*.out")):
            parts.append(f"==== {path.name}\n{path.read_text()[-4000:]}")
        return "\n".join(parts)

    # -- WebSocket (GET /v1/ws) -----------------------------------------------------------
    def websocket(self, query: str = "", **options):
        """Opens GET /v1/ws (`query` without its '?'): a websockets sync connection, `options`
        passed to websockets' connect (additional_headers, origin, sock, max_queue...)."""
        url = self.url.replace("http://", "ws://") + "/v1/ws" + (f"?{query}" if query else "")
        return websockets.sync.client.connect(url, proxy=None, compression=None, open_timeout=10, **options)

    # -- HTTP helpers ------------------------------------------------------------------
    def submit(self, job_type: str, input=None, **options) -> dict:
        body = {"type": job_type, "input": input}
        if options:
            body["options"] = options
        response = self.http.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        return response.json()

    def wait_result(self, job_id: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.http.get(f"/v1/jobs/{job_id}/result", params={"wait": 5})
            if response.status_code == 200:
                return response.json()
            assert response.status_code == 202, response.text
        raise TimeoutError(f"job {job_id} did not finish")

    def run_times(self, ids: list[str]) -> list[tuple[int, int]]:
        """(started_ms, finished_ms) of each job as its hash in Redis says, 0 for what has not
        happened yet."""
        with self.redis_admin() as redis:
            rows = redis.pipeline([["HMGET", f"sluice:job:{job_id}", "started_ms", "finished_ms"] for job_id in ids])
        return [(int(started or 0), int(finished or 0)) for started, finished in rows]

    def wait_finished(self, ids: list[str], timeout: float = 60.0) -> list[tuple[int, int]]:
        """run_times() once every one of the jobs has finished."""
        return self._wait_times(ids, 1, "finish", timeout)

    def wait_started(self, ids: list[str], timeout: float = 60.0) -> list[tuple[int, int]]:
        """run_times() once every one of the jobs has started."""
        return self._wait_times(ids, 0, "start", timeout)

    def _wait_times(self, ids: list[str], which: int, what: str, timeout: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout
        while True:
            times = self.run_times(ids)
            if all(time_ms[which] for time_ms in times):
                return times
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(1 for t in times if not t[which])} of {len(ids)} jobs did not {what}")
            time.sleep(0.05)

    def events(self, job_id: str, last_event_id: int | None = None, timeout: float = 30.0) -> list[dict]:
        """Reads the job's SSE stream until the server closes it; returns the parsed events."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        return list(iter_sse(self.http, f"/v1/jobs/{job_id}/events", headers, timeout))


def most_at_once(times: list[tuple[int, int]]) -> int:
    """The most of these runs (started_ms, finished_ms) that overlapped at any moment; a run
    that ends as another starts does not overlap it."""
    edges = sorted([(finished, -1) for _, finished in times] + [(started, 1) for started, _ in times])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def iter_sse(client: httpx.Client, path: str, headers: dict, timeout: float):
    """Yields the stream's events as they arrive, until the server ends the stream."""
    current = {}
    with client.stream("GET", path, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if "data" in current:
                    yield {"id": int(current["id"]), "event": current["event"], "data": json.loads(current["data"])}
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value[1:] if value.startswith(" ") else value


class HttpConnection:
    """One HTTP/1.1 keep-alive connection for load: sends a request, reads one response.
    Much lighter on the CPU than a full client, so the load generator leaves the cores to Sluice."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (method.encode(), path.encode(), self.host.encode(),
                                                              len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def submit_all(url: str, bodies: list[dict], connections: int = 32,
                     latencies: list[float] | None = None) -> list[tuple[int, dict | None]]:
    """POSTs every body to /v1/jobs over `connections` keep-alive connections. Returns
    (status, parsed JSON reply) per body, in order; a connection that failed gives (0, None)."""
    results: list[tuple[int, dict | None]] = [(0, None)] * len(bodies)
    indices = iter(range(len(bodies)))

    async def client():
        conn = HttpConnection(url)
        for i in indices:
            started = time.perf_counter()
            try:
                status, reply = await conn.request("POST", "/v1/jobs", json.dumps(bodies[i]).encode())
                results[i] = (status, json.loads(reply) if reply else None)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
        conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return results
