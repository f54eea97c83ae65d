"""`make run` (scripts/run.sh) as a user runs it: its banner comes once the workers it started
have declared their job types; a component killed with SIGKILL while jobs are submitted is
started again and every accepted job still succeeds; SIGTERM stops everything it started and
leaves no port open."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from pipeline import BUILD, ROOT, free_port

BANNER = "sluice: api listening on "


def process_name(pid: int) -> str:
    """The program's name as its command line starts (redis-server rewrites the rest)."""
    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    return os.path.basename(argv0.split(" ")[0])


def process_tree(root: int) -> dict[int, str]:
    """Every live descendant of `root`, pid -> its process_name()."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    tree, unvisited = {}, [root]
    while unvisited:
        for pid in children.get(unvisited.pop(), []):
            with contextlib.suppress(OSError):
                tree[pid] = process_name(pid)
                unvisited.append(pid)
    return tree


def alive(pid: int, name: str) -> bool:
    try:
        return process_name(pid) == name
    except OSError:
        return False


class SupervisedRun:
    """scripts/run.sh on free ports with its own data directory. Remembers every process seen
    under it, so the test can check that all of them are gone at the end."""

    def __init__(self, workdir: Path, api_port: int | None = None, **env: str):
        self.workdir = workdir
        self.ports = {"api": api_port or free_port(), "redis": free_port(), "broker-api": free_port(),
                      "broker-workers": free_port()}
        self.env = dict(os.environ, SLUICE_BUILD_DIR=str(BUILD), SLUICE_DATA_DIR=str(workdir / "data"),
                        SLUICE_API_PORT=str(self.ports["api"]), SLUICE_REDIS_PORT=str(self.ports["redis"]),
                        SLUICE_BROKER_API_ENDPOINT=f"tcp://127.0.0.1:{self.ports['broker-api']}",
                        SLUICE_BROKER_WORKER_ENDPOINT=f"tcp://127.0.0.1:{self.ports['broker-workers']}",
                        **env)
        self.output = workdir / "run.out"
        self.seen: dict[int, str] = {}
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], env=self.env, start_new_session=True,
                                     stdout=self.output.open("w"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.ports['api']}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def wait_banner(self, timeout: float = 60) -> float:
        """Waits for the "api listening" line; returns when it was seen (time.monotonic())."""
        deadline = time.monotonic() + timeout
        while BANNER not in self.output.read_text():
            assert self.proc.poll() is None, f"run.sh exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, "no banner"
            time.sleep(0.02)
        return time.monotonic()

    def components(self) -> dict[int, str]:
        tree = process_tree(self.proc.pid)
        self.seen.update(tree)
        return tree

    def pid_of(self, binary: str) -> int:
        pids = [pid for pid, name in self.components().items() if name == binary]
        assert len(pids) == 1, (binary, self.components())
        return pids[0]

    def wait_restarted(self, binary: str, old_pid: int, timeout: float = 5) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [pid for pid, name in self.components().items() if name == binary]
            if pids and old_pid not in pids:
                return pids[0]
            time.sleep(0.05)
        raise AssertionError(f"{binary} not restarted within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Sends `sig` to run.sh alone, or with SIGINT to its whole process group, as a Ctrl-C
        on the terminal does; returns run.sh's exit status."""
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Ends whatever is still running (a failed test), run.sh first so the stop is ordered."""
        self.http.close()
        if self.proc.poll() is None:
            self.components()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, name in self.seen.items():
            if alive(pid, name):
                os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        paths = [self.output, *sorted((self.workdir / "data" / "logs").glob("*.log"))]
        return "\n".join(f"==== {p.name}\n{p.read_text()[-3000:]}" for p in paths if p.exists())


@contextlib.contextmanager
def supervised_run(workdir: Path, request, api_port: int | None = None, **env: str):
    run = SupervisedRun(workdir, api_port, **env)
    try:
        yield run
    finally:
        run.close()
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            print(run.logs())
        shutil.rmtree(workdir, ignore_errors=True)


class Submitter:
    """Submits `body` from a few threads until stop(); keeps the id of every job answered 202
    and counts the other answers (0: no HTTP answer, the api was gone)."""

    def __init__(self, url: str, body: dict, threads: int = 4):
        self.accepted: list[str] = []
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(url, body)) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, url: str, body: dict) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not self.stopping.is_set():
                try:
                    response = http.post("/v1/jobs", json=body)
                    status = response.status_code
                except httpx.TransportError:
                    status = 0
                    time.sleep(0.05)
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if status == 202:
                        self.accepted.append(response.json()["id"])

    def stop(self) -> list[str]:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive(), "submitter hung"
        return self.accepted


def wait_all_succeeded(http: httpx.Client, ids: list[str], timeout: float = 60) -> dict[str, dict]:
    """Polls GET /v1/jobs/{id} until every job succeeded; returns the final job bodies."""
    deadline = time.monotonic() + timeout
    jobs: dict[str, dict] = {}
    pending = list(ids)
    while pending:
        still = []
        for job_id in pending:
            jobs[job_id] = http.get(f"/v1/jobs/{job_id}").json()
            status = jobs[job_id]["status"]
            assert status not in ("failed", "canceled"), (job_id, status)
            if status != "succeeded":
                still.append(job_id)
        pending = still
        assert not pending or time.monotonic() < deadline, f"{len(pending)} jobs never succeeded, e.g. {pending[:3]}"
        time.sleep(0.2)
    return jobs


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_components_killed_under_load_are_restarted(tmp_path, request):
    # The api gives up on a broker request after 2 s (default 5), so submits made while the
    # broker is down answer 503 sooner.
    with supervised_run(tmp_path, request, SLUICE_PYTHON_WORKERS="0", SLUICE_NATIVE_WORKERS="1",
                        SLUICE_BROKER_TIMEOUT_MS="2000") as run:
        run.wait_banner()
        started = {name for name in run.components().values()}
        assert {"redis-server", "sluice-broker", "sluice-api", "sluice-worker-native"} <= started, started

        for victim, body, expected in [
            ("sluice-worker-native", {"type": "sleep", "input": {"ms": 10}}, {202}),
            ("sluice-broker", {"type": "echo", "input": {"x": 1}}, {202, 503}),
            ("sluice-api", {"type": "echo", "input": {"x": 2}}, {202, 0}),
        ]:
            old = run.pid_of(victim)
            submitter = Submitter(run.url, body)
            time.sleep(0.5)
            os.kill(old, signal.SIGKILL)
            run.wait_restarted(victim, old)
            time.sleep(1.0)
            accepted = submitter.stop()
            assert set(submitter.statuses) <= expected, (victim, submitter.statuses)
            # The stack serves again: a new job is accepted and runs.
            after = run.http.post("/v1/jobs", json=body)
            assert after.status_code == 202, (victim, after.text)
            assert len(accepted) >= 10, (victim, submitter.statuses)
            jobs = wait_all_succeeded(run.http, [*accepted, after.json()["id"]])
            if victim == "sluice-worker-native":  # it was killed holding jobs, which ran again
                assert any(job["redeliveries"] for job in jobs.values()), "the worker held no job"

        assert "exited: broker (terminated by SIGKILL" in (tmp_path / "run.out").read_text()
        run.components()
        assert run.stop() == 0
        assert not [pid for pid, name in run.seen.items() if alive(pid, name)], run.seen
        for port in run.ports.values():
            assert refuses_connections(port), port


def test_banner_waits_for_the_python_worker(tmp_path, request):
    """On a fresh data directory no type is known until a worker declares it: a `chat` submitted
    right after the banner must not be refused while the Python worker still loads."""
    with supervised_run(tmp_path, request, SLUICE_PYTHON_WORKERS="1", SLUICE_NATIVE_WORKERS="0") as run:
        run.wait_banner(timeout=90)
        response = run.http.post("/v1/jobs", json={"type": "chat", "input": {"prompt": "Hi", "max_tokens": 4}})
        assert response.status_code == 202, response.text
        assert "(python) ready: types [" in (tmp_path / "data" / "logs" / "broker.log").read_text()
        done = run.http.get(f"/v1/jobs/{response.json()['id']}/result", params={"wait": 60}, timeout=70).json()
        assert done["status"] == "succeeded", done
        assert run.stop() == 0


def test_ctrl_c_stops_workers_first_and_redis_last(tmp_path, request):
    with supervised_run(tmp_path, request, SLUICE_PYTHON_WORKERS="0", SLUICE_NATIVE_WORKERS="2") as run:
        run.wait_banner()
        # Redis's password, made on this first start, is in a private file and on no command line.
        secrets = tmp_path / "data" / "secrets"
        assert secrets.stat().st_mode & 0o777 == 0o700 and (secrets / "redis-password").stat().st_mode & 0o777 == 0o600
        password = (secrets / "redis-password").read_text().strip().encode()
        for pid in run.components():
            with contextlib.suppress(OSError):
                assert password not in Path(f"/proc/{pid}/cmdline").read_bytes(), run.seen[pid]
        assert run.stop(signal.SIGINT) == 0
        assert not [pid for pid, name in run.seen.items() if alive(pid, name)], run.seen
        stopped = re.findall(r"stopped: (\S+) \(exit status 0\)", (tmp_path / "run.out").read_text())
        assert stopped[-4:] == ["webhooks", "api", "broker", "redis"], stopped
        assert sorted(stopped[:-4]) == ["worker-native-1", "worker-native-2"], stopped


def free_port_run(count: int) -> int:
    """A port P with P .. P + count - 1 all free (run.sh puts api I of N on P + I)."""
    while True:
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.create_server(("127.0.0.1", port)))
            except OSError:
                continue
        return first


def test_two_apis_behind_haproxy(tmp_path, request):
    public = free_port_run(3)
    with supervised_run(tmp_path, request, api_port=public, SLUICE_API_INSTANCES="2", SLUICE_PYTHON_WORKERS="0",
                        SLUICE_NATIVE_WORKERS="1", SLUICE_API_MAX_CONNECTIONS_PER_CLIENT="64") as run:
        run.wait_banner()
        # The per-client limit moved to HAProxy, which sees the clients' addresses.
        assert 'SLUICE_PROXY_MAX_CONNECTIONS_PER_CLIENT="64"' in (tmp_path / "data" / "supervisord.conf").read_text()
        assert f"{BANNER}http://127.0.0.1:{public}, dashboard at http://127.0.0.1:{public}/ui/ (HAProxy in front of 2 apis" in (tmp_path / "run.out").read_text()
        names = sorted(name for name in run.components().values() if name in ("sluice-api", "haproxy"))
        assert names == ["haproxy", "sluice-api", "sluice-api"], names
        for port in (public + 1, public + 2):  # each api on its own port, ready
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        # A job through the public port, on whichever api HAProxy picks.
        response = run.http.post("/v1/jobs", json={"type": "echo", "input": {"via": "haproxy"}})
        assert response.status_code == 202, response.text
        done = run.http.get(f"/v1/jobs/{response.json()['id']}/result", params={"wait": 30}, timeout=40).json()
        assert done["status"] == "succeeded" and done["result"] == {"via": "haproxy"}, done
        assert (tmp_path / "data" / "logs" / "api-2.log").exists()
        assert run.stop() == 0
        assert not [pid for pid, name in run.seen.items() if alive(pid, name)], run.seen
        for port in (public, public + 1, public + 2):
            assert refuses_connections(port), port


@pytest.mark.parametrize("instances, host, problem", [
    # Behind HAProxy the apis listen on loopback, where they would take the open mode: run.sh
    # refuses it for a public address as the api itself does.
    ("2", "0.0.0.0", "SLUICE_AUTH is unset, and SLUICE_API_HOST 0.0.0.0 is not a loopback address"),
    ("0", "127.0.0.1", "SLUICE_API_INSTANCES must be a number of apis (1 or more), got '0'"),
    ("two", "127.0.0.1", "SLUICE_API_INSTANCES must be a number of apis (1 or more), got 'two'"),
])
def test_run_refuses_before_starting_anything(tmp_path, instances, host, problem):
    env = dict(os.environ, SLUICE_API_INSTANCES=instances, SLUICE_API_HOST=host, SLUICE_DATA_DIR=str(tmp_path / "data"),
               SLUICE_BUILD_DIR=str(BUILD))
    env.pop("SLUICE_AUTH", None)
    done = subprocess.run([str(ROOT / "scripts" / "run.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and problem in done.stderr, (done.returncode, done.stderr)
    assert not (tmp_path / "data" / "supervisord.conf").exists()
