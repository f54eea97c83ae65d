"""The tests' own ZeroMQ peers: a rogue one with a CURVE key the broker does not know, or with
no CURVE at all; a way to watch everything a socket receives for a while; and an api peer with
an allowed key, speaking SLUICE/1 as a compromised api could."""
from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import msgpack
import zmq

from pipeline import Pipeline

# How a rogue peer connects.
UNKNOWN_KEY = "unknown key"  # CURVE, with a keypair of its own that no allow-list holds
NO_CURVE = "no CURVE"        # plain ZMTP, as every peer did before CURVE


def rogue_dealer(context: zmq.Context, endpoint: str, broker_key: bytes, how: str,
                 keypair: tuple[bytes, bytes] | None = None) -> tuple[zmq.Socket, str | None]:
    """A DEALER connected to `endpoint` the way `how` says (with UNKNOWN_KEY: `keypair`, public
    and secret, or a new one); returns it and its public key (z85 text; None without CURVE)."""
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    public = None
    if how == UNKNOWN_KEY:
        public, secret = keypair or zmq.curve_keypair()
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = secret, public, broker_key
    sock.connect(endpoint)
    return sock, public.decode() if public else None


def received(sock: zmq.Socket, seconds: float, keepalive: list[bytes] | None = None) -> list[list[bytes]]:
    """Every message `sock` receives within `seconds`, sending `keepalive` (if any) every 0.5 s
    meanwhile, as a live peer would (as far as it can: once its handshake has failed, libzmq
    gives up on the connection and a send finds no peer)."""
    messages, deadline, next_keepalive = [], time.monotonic() + seconds, 0.0
    while (left := deadline - time.monotonic()) > 0:
        if keepalive and time.monotonic() >= next_keepalive:
            with contextlib.suppress(zmq.Again):
                sock.send_multipart(keepalive, zmq.DONTWAIT)
            next_keepalive = time.monotonic() + 0.5
        if sock.poll(int(min(left, 0.5) * 1000) + 1):
            messages.append(sock.recv_multipart())
    return messages


def submit_body(req_id: int, job_id: str | None = None, tenant: str = "default", type_: str = "echo",
                input_: bytes = b"\x80", priority: int = 0, attempts: int = 3, timeout_s: int = 300,
                key: str = "", request_hash: str = "", key_id: str = "", submits_per_s: int = 0,
                concurrency_key: str = "", concurrency_limit: object = 0, disconnect_grace_ms: int = 0,
                run_at_ms: int = 0, expire_at_ms: int = 0, webhook_url: str = "",
                webhook_events: object = (), traceparent: str = "", cache_ttl_s: int = 0,
                dedupe: object = False) -> bytes:
    return msgpack.packb([req_id, job_id or str(uuid.uuid4()), tenant, type_, input_, priority, attempts,
                          timeout_s, key, request_hash, key_id, submits_per_s, concurrency_key, concurrency_limit,
                          disconnect_grace_ms, run_at_ms, expire_at_ms, webhook_url, list(webhook_events), traceparent,
                          cache_ttl_s, dedupe],
                         use_bin_type=True)


class RogueApi:
    """A DEALER on the broker's frontend speaking SLUICE/1 as an api would, with an allowed api
    key: what a compromised api could send."""

    def __init__(self, context: zmq.Context, p: Pipeline):
        self.sock = p.allow(context.socket(zmq.DEALER), "api")
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(p.frontend)

    def request(self, command: bytes, body: bytes, timeout_ms: int = 5000) -> list | None:
        """Sends one request; returns the REPLY's fields, or None when none came in time."""
        return self.requests(command, [body], timeout_ms)[0]

    def requests(self, command: bytes, bodies: list[bytes], timeout_ms: int = 5000) -> list[list | None]:
        """Sends every request at once, then returns the REPLYs' fields in the order they came,
        None for each that did not come within `timeout_ms` of the one before."""
        for body in bodies:
            self.sock.send_multipart([b"SLUICE/1", command, body])
        replies = []
        for _ in bodies:
            if not self.sock.poll(timeout_ms):
                return replies + [None] * (len(bodies) - len(replies))
            frames = self.sock.recv_multipart()
            assert frames[1] == b"\x04", frames
            replies.append(msgpack.unpackb(frames[2], raw=False))
        return replies


@contextlib.contextmanager
def rogue_api(p: Pipeline) -> Iterator[RogueApi]:
    """A RogueApi on a context of its own, closed on exit."""
    context = zmq.Context()
    try:
        yield RogueApi(context, p)
    finally:
        context.destroy(linger=0)


def submit_jobs(api: RogueApi, tenant: str, count: int, type_: str = "sleep", input_: object = None) -> list[str]:
    """Submits `count` jobs of `type_` with `input_` as `tenant`, all at once; returns their ids
    once every one is stored (202)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    bodies = [submit_body(i, job_id, tenant=tenant, type_=type_, input_=msgpack.packb(input_))
              for i, job_id in enumerate(ids)]
    replies = api.requests(b"\x01", bodies, timeout_ms=60_000)
    refused = [(i, reply) for i, reply in enumerate(replies) if reply is None or reply[1] != 202]
    assert not refused, f"{len(refused)} of {count} not stored, first: {refused[:3]}"
    return ids


def sleeps_then_worker(p: Pipeline, concurrency: int, **tenants: tuple[int, int]) -> list[list[str]]:
    """Queues sleep jobs as each tenant in turn (`tenant=(count, ms)`), then starts a native
    worker of `concurrency` to run them; returns each tenant's ids, in the order given."""
    with rogue_api(p) as api:
        ids = [submit_jobs(api, tenant, count, input_={"ms": ms}) for tenant, (count, ms) in tenants.items()]
    p.start_worker("native", concurrency=concurrency)
    return ids
