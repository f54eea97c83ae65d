"""Workers on another host, as near as one machine gets: two network namespaces joined by a veth
pair. Redis, the broker and the api run in namespace A (the broker's worker port bound to A's
veth address, CURVE on), the workers in namespace B. A worker with an allowed key gets jobs and
a capture of the veth does not hold a job's input bytes; a worker with an unknown key gets
nothing and the broker logs the refusal. Needs root (`ip netns`): skipped otherwise."""
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from sluice.curve import read_key

from pipeline import BUILD, Pipeline, wait_for_line

# A private /30 that exists only on the veth pair inside this test's own namespaces.
BROKER_ADDRESS, WORKER_ADDRESS, PREFIX = "10.231.0.1", "10.231.0.2", 30
CLONE_NEWNET = 0x40000000


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2: scripts/setup.sh installs it)"
    probe = f"sluice-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "`ip netns add` does not work here"
    subprocess.run(["ip", "netns", "del", probe], check=True)
    return None


UNAVAILABLE = netns_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def namespaces():
    """Namespaces A and B (names unique to this run), each with `lo` up, joined by a veth pair
    A:BROKER_ADDRESS <-> B:WORKER_ADDRESS; yields (A, B, A's veth name). Deleted afterwards."""
    tag = os.getpid()
    a, b, veth_a, veth_b = f"sluice-a-{tag}", f"sluice-b-{tag}", f"slv{tag}a", f"slv{tag}b"
    made = []
    try:
        for name in (a, b):
            ip("netns", "add", name)
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("link", "add", veth_a, "netns", a, "type", "veth", "peer", "name", veth_b, "netns", b)
        for name, veth, address in ((a, veth_a, BROKER_ADDRESS), (b, veth_b, WORKER_ADDRESS)):
            ip("-n", name, "addr", "add", f"{address}/{PREFIX}", "dev", veth)
            ip("-n", name, "link", "set", veth, "up")
        yield a, b, veth_a
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


@contextlib.contextmanager
def inside(netns: str):
    """Runs the block with this thread in network namespace `netns`: sockets it opens and
    processes it starts are there. Back in its own namespace afterwards, even on failure."""
    libc = ctypes.CDLL(None, use_errno=True)

    def enter(fd: int) -> None:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")

    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{netns}") as there:
        enter(there.fileno())
        try:
            yield
        finally:
            enter(home.fileno())


@pytest.fixture
def remote(namespaces, tmp_path, request):
    """A pipeline in namespace A whose broker takes workers on A's veth address; yields
    (pipeline, A, B, A's veth name). The test itself runs inside A, so it reaches the api and Redis
    on A's loopback."""
    a, b, veth_a = namespaces
    with inside(a):
        p = Pipeline(tmp_path)
        try:
            p.start(SLUICE_BROKER_WORKER_ENDPOINT=f"tcp://{BROKER_ADDRESS}:*")
            yield p, a, b, veth_a
        finally:
            p.stop()
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                print(p.logs())
            shutil.rmtree(tmp_path, ignore_errors=True)


@contextlib.contextmanager
def capture(netns: str, interface: str, path: Path):
    """tcpdump on `interface` of `netns` into the pcap file `path` (written packet by packet)
    for the duration of the block."""
    err = path.with_suffix(".log")
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-i", interface, "-U", "-n", "-w", str(path)],
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    try:
        wait_for_line(err, r"listening on", proc)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def tcp_payload_bytes(pcap: bytes, port: int) -> int:
    """How many TCP payload bytes of IPv4-over-Ethernet packets in the capture went to or came
    from `port`."""
    total, offset = 0, 24  # the pcap file header
    while offset + 16 <= len(pcap):
        captured = struct.unpack_from("<I", pcap, offset + 8)[0]
        frame = pcap[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_TCP:
            continue
        ip_start, ip_header = 14, (frame[14] & 0x0F) * 4
        ip_length = struct.unpack_from(">H", frame, ip_start + 2)[0]
        tcp = ip_start + ip_header
        ports = struct.unpack_from(">HH", frame, tcp)
        if port in ports:
            total += ip_length - ip_header - (frame[tcp + 12] >> 4) * 4
    return total


def wait_for_bytes(path: Path, needle: bytes, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_bytes():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} never reached {path}")
        time.sleep(0.05)


def test_a_worker_with_an_allowed_key_gets_jobs_over_an_encrypted_link(remote, tmp_path_factory):
    p, a, b, veth_a = remote
    broker_port = int(p.backend.rsplit(":", 1)[1])
    assert p.backend.startswith(f"tcp://{BROKER_ADDRESS}:")
    p.start_worker(name="remote", netns=b)
    p.wait_workers("remote")

    marker = secrets.token_hex(32)
    control = secrets.token_hex(32).encode()
    pcap = tmp_path_factory.mktemp("capture") / "veth.pcap"
    with capture(a, veth_a, pcap):
        job = p.submit("echo", {"marker": marker})["id"]
        done = p.wait_result(job)
        # Control: plain bytes sent across the same veth after the job reach the same capture.
        # The capture reads packets in order, so once they are in the file the job's are too.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(control, (WORKER_ADDRESS, 9))
        wait_for_bytes(pcap, control)

    assert done["status"] == "succeeded" and done["result"] == {"marker": marker}
    assert [h["worker"] for h in done["history"]] == ["remote"]
    data = pcap.read_bytes()
    # The job's input went to the worker and its result came back over the broker's port...
    assert tcp_payload_bytes(data, broker_port) > 2 * len(marker)
    # ...encrypted: a grep that finds the control finds no trace of the marker.
    assert control in data
    assert marker.encode() not in data


def test_a_worker_with_an_unknown_key_gets_nothing_and_is_logged(remote, tmp_path_factory):
    p, _, b, _ = remote
    # A worker with the allowed key declares the type (a type never declared is refused), then leaves.
    honest = p.start_worker(name="honest", netns=b)
    p.wait_ready("echo")
    p.stop_process(honest)

    keys = tmp_path_factory.mktemp("stranger")
    subprocess.run([str(BUILD / "common" / "sluice-keygen"), str(keys / "stranger")], check=True,
                   stdout=subprocess.DEVNULL)
    public = read_key(keys / "stranger.pub").decode()
    p.start_worker(name="stranger", netns=b, SLUICE_CURVE_SECRET_KEY_FILE=str(keys / "stranger.key"))
    job = p.submit("echo", {"n": 1})["id"]

    deadline = time.monotonic() + 15
    while public not in p.broker_log():
        assert time.monotonic() < deadline, "the broker never logged the stranger's key"
        time.sleep(0.05)
    refusals = [line for line in p.broker_log().splitlines() if public in line]
    assert f"backend: refused a CURVE client from {WORKER_ADDRESS}" in refusals[0]
    assert "not in SLUICE_WORKER_KEYS_FILE" in refusals[0]
    assert "worker stranger (" not in p.broker_log()
    assert p.http.get(f"/v1/jobs/{job}").json()["status"] == "queued"

    # The job was kept for a worker with an allowed key.
    p.start_worker(name="honest-again", netns=b)
    done = p.wait_result(job)
    assert done["status"] == "succeeded" and [h["worker"] for h in done["history"]] == ["honest-again"]
