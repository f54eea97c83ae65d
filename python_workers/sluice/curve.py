"""CURVE keys for the worker's link to the broker (README.md, Security).

A key file is what sluice-keygen writes and common/curve.hpp reads: one Z85 key (40 characters
for 32 bytes); blank lines and lines starting with '#' are ignored. A worker needs its own secret
key (its public key follows from it) and the broker's public key; CURVE is required whenever
the broker endpoint is not local to this host (local_endpoint).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from .errors import SluiceError

KEY_LENGTH = 40
_Z85 = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")


class KeyFileError(SluiceError):
    """A key file cannot be read, or does not hold exactly one key; the message says which."""


@dataclass(frozen=True)
class ClientKeys:
    """A CURVE client's keypair and the public key of the server it talks to, as Z85 bytes."""

    public_key: bytes
    secret_key: bytes
    server_key: bytes


def read_key(path: str | Path) -> bytes:
    """Returns the one key in file `path`; raises KeyFileError."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot be read ({exc})") from exc
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) != KEY_LENGTH or not set(line) <= _Z85:
            raise KeyFileError(f"{path}: line {number} is not a key ({KEY_LENGTH} Z85 characters)")
        keys.append(line.encode())
    if len(keys) != 1:
        raise KeyFileError(f"{path}: holds {len(keys)} keys, must hold one")
    return keys[0]


def local_endpoint(endpoint: str) -> bool:
    """True when `endpoint` cannot leave this host: ipc://, inproc://, or tcp:// to a loopback
    address (127.x.x.x, ::1, localhost). Anything else may cross a network and needs CURVE."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    address = endpoint[len("tcp://"):].rsplit(";", 1)[-1]  # tcp://SOURCE;HOST:PORT names the host last
    host = address[1:address.find("]")] if address.startswith("[") else address.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
