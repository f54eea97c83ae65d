"""Sluice's exception hierarchy: one root class, so callers can catch everything Sluice raises.

Modelled on Dramatiq's errors.py: a decode error keeps the raw bytes it failed on and the
underlying cause, so a log line can show exactly what arrived on the wire.
"""

from __future__ import annotations

from typing import Any


class SluiceError(Exception):
    """Root of every exception Sluice raises on purpose."""


class DecodeError(SluiceError):
    """A ZMQ message (or a body) is not a valid SLUICE/1 message.

    Attributes:
        raw: what failed to decode, as received (a list of frames, or one body as bytes).
        cause: the underlying exception (msgpack error, type mismatch, ...) or None.
    """

    def __init__(self, message: str, raw: Any, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.cause = cause


class RateLimitedError(SluiceError):
    """Raised by a task handler when its model provider refused a call for now (HTTP 429).

    The worker tells the broker (RATE_LIMITED) instead of failing the attempt: the job goes back
    to its queue without spending an attempt, and no job of the task's model starts anywhere
    for `retry_after` seconds (README.md, "Provider rate limits").

    Attributes:
        retry_after: seconds the provider asked to wait (0 when it did not say).
    """

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))


class NonRetryableError(SluiceError):
    """Raised by a task handler to fail its job at once: the broker will not run it again.

    Any other exception from a handler is a retryable failure (the broker retries the job while
    it has attempts left). Use this for input that can never succeed.
    """
