"""The tests' own ZeroMQ peers: a rogue one with a CURVE key the broker does not know, or with
no CURVE at all, and a way to watch everything a socket receives for a while."""
from __future__ import annotations

import contextlib
import time

import zmq

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
