"""A minimal Redis client (RESP2 over a socket) for tests and benchmarks to inspect what the
broker wrote: pipelined commands, binary-safe replies. Not for production use."""
from __future__ import annotations

import socket


class RedisError(Exception):
    pass


class Redis:
    """With a `password`, logs in (AUTH `user` `password`) before anything else."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                 user: str = "sluice", password: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        if password is not None:
            try:
                self.call("AUTH", user, password)
            except (RedisError, OSError):
                self.close()
                raise

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> "Redis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pipeline(self, commands: list[list]) -> list:
        """Sends every command, then reads every reply, in order. Errors come back as RedisError values."""
        out = bytearray()
        for command in commands:
            out += b"*%d\r\n" % len(command)
            for arg in command:
                data = arg if isinstance(arg, bytes) else str(arg).encode()
                out += b"$%d\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(out)
        return [self._read() for _ in commands]

    def call(self, *command):
        reply = self.pipeline([list(command)])[0]
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def _read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise ConnectionError(f"unexpected reply {line!r}")
