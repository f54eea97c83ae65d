"""SLUICE/1 message dataclasses and their codec: the Python side of schemas/messages.json.

Every message on the wire is three ZMQ frames (schemas/PROTOCOL.md, "Frames"):

    frame 0  b"SLUICE/1"   signature: protocol name and version
    frame 1  one byte      command id (Command below)
    frame 2  msgpack       one array holding the message's fields in order

The encoding is byte-identical to msgpack-c's (common/protocol.hpp): str fields are msgpack str,
bin fields msgpack bin, integers take their smallest encoding, f64 is float64 (whole values as ints). The shared
vectors in schemas/vectors/messages.json check this from both sides.

Pure data and (de)serialisation, no sockets; every function here is thread-safe.
"""

from __future__ import annotations

import dataclasses
import functools
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence, Union

import msgpack

from .errors import DecodeError

# Frame 0 of every message: protocol name and version.
SIGNATURE = b"SLUICE/1"

# Heartbeat period on the backend socket (seconds), and how many silent periods make a peer dead.
# One second keeps a dead worker's jobs waiting at most ~3 s before they are handed out again.
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_LIVENESS = 3
# Largest job input (msgpack bytes) in a JOB, the broker's SLUICE_MAX_INPUT_BYTES default, and
# the room for the rest of a frame: common/limits.hpp (DEFAULT_MAX_INPUT, FRAME_HEADROOM).
DEFAULT_MAX_INPUT = 512 * 1024
FRAME_HEADROOM = 64 * 1024
# Longest FAILURE error in bytes of UTF-8 (common/limits.hpp MAX_ERROR_BYTES): the broker cuts a
# longer one, and the worker cuts its own before sending (worker.py _error_text).
MAX_ERROR_BYTES = 4096
# A typed task's input JSON Schema in READY, in bytes, and all of one READY's schemas together
# (common/limits.hpp MAX_SCHEMA_BYTES, MAX_READY_SCHEMA_BYTES): the broker ignores what is past them.
MAX_SCHEMA_BYTES = 64 * 1024
MAX_READY_SCHEMA_BYTES = 512 * 1024


class Command(enum.IntEnum):
    """Command ids: hand-numbered, never reused (schemas/messages.json)."""

    SUBMIT = 1
    CANCEL = 2
    PING = 3
    REPLY = 4
    RETRY = 5
    FLOW = 6
    READY = 16
    JOB = 17
    PROGRESS = 18
    CHUNK = 19
    RESULT = 20
    FAILURE = 21
    CANCEL_JOB = 22
    CANCELED = 23
    HEARTBEAT = 24
    DISCONNECT = 25
    SPAWN = 26
    RATE_LIMITED = 27


def command_name(command_id: int) -> str:
    """Returns the command's name for logs ("SUBMIT"), or "UNKNOWN(<id>)" for an unknown id."""
    try:
        return Command(command_id).name
    except ValueError:
        return f"UNKNOWN({command_id})"


def _wire(kind: str, **default: Any) -> Any:
    """Declares a dataclass field together with its wire type from messages.json; `default=` for
    a trailing field that callers may leave out (decoding still requires it)."""
    return field(metadata={"wire": kind}, **default)


U32 = "u32"
U64 = "u64"
I64 = "i64"
F64 = "f64"
STR = "str"
BIN = "bin"
BOOL = "bool"
STR_LIST = "[str]"
BIN_LIST = "[bin]"
U32_LIST = "[u32]"


@dataclass
class Submit:
    COMMAND: ClassVar[Command] = Command.SUBMIT
    req_id: int = _wire(U64)
    job_id: str = _wire(STR)
    tenant: str = _wire(STR)
    type: str = _wire(STR)
    input: bytes = _wire(BIN)
    priority: int = _wire(I64)
    max_attempts: int = _wire(U32)
    timeout_s: int = _wire(U32)
    idempotency_key: str = _wire(STR)
    request_hash: str = _wire(STR)
    key_id: str = _wire(STR)
    submits_per_s: int = _wire(U32)
    concurrency_key: str = _wire(STR)
    concurrency_limit: int = _wire(U32)
    disconnect_grace_ms: int = _wire(U32)
    run_at_ms: int = _wire(U64)
    expire_at_ms: int = _wire(U64)
    webhook_url: str = _wire(STR)
    webhook_events: list[str] = _wire(STR_LIST)
    traceparent: str = _wire(STR, default="")  # W3C trace context of the api's submit span
    cache_ttl_s: int = _wire(U32, default=0)  # options.cache_ttl_s: 0 none
    dedupe: bool = _wire(BOOL, default=False)  # options.dedupe: join an identical queued or running job


@dataclass
class Flow:
    COMMAND: ClassVar[Command] = Command.FLOW
    req_id: int = _wire(U64)
    parent: bytes = _wire(BIN)  # the parent's SUBMIT body
    children: list[bytes] = _wire(BIN_LIST)  # each child's SUBMIT body
    on_failure: list[str] = _wire(STR_LIST)  # parallel to children: "fail_parent" or "ignore"


@dataclass
class Cancel:
    COMMAND: ClassVar[Command] = Command.CANCEL
    req_id: int = _wire(U64)
    job_id: str = _wire(STR)


@dataclass
class Retry:
    COMMAND: ClassVar[Command] = Command.RETRY
    req_id: int = _wire(U64)
    job_id: str = _wire(STR)


@dataclass
class Ping:
    COMMAND: ClassVar[Command] = Command.PING
    req_id: int = _wire(U64)


@dataclass
class Reply:
    COMMAND: ClassVar[Command] = Command.REPLY
    req_id: int = _wire(U64)
    status: int = _wire(U32)  # the HTTP status the api answers with
    code: str = _wire(STR)  # stable error code, empty on success
    message: str = _wire(STR)
    job_id: str = _wire(STR)
    state: str = _wire(STR)
    retry_after_ms: int = _wire(U32)  # rate_limited: when the key may submit again
    cached: bool = _wire(BOOL, default=False)  # answered by an earlier job's result (options.cache_ttl_s)
    joined: str = _wire(STR, default="")  # options.dedupe: the job the new job joined; "" none


@dataclass
class Ready:
    COMMAND: ClassVar[Command] = Command.READY
    worker_name: str = _wire(STR)
    runtime: str = _wire(STR)
    types: list[str] = _wire(STR_LIST)
    concurrency: int = _wire(U32)
    # Parallel to types: each type's input JSON Schema as JSON text, "" for none (registry.py).
    schemas: list[str] = _wire(STR_LIST)
    # Parallel to types (token budgets): each type's model ("" for none), its prompt bytes per
    # token (0: the prompt is not counted) and its default max_tokens, for the broker's estimate.
    models: list[str] = _wire(STR_LIST, default_factory=list)
    chars_per_token: list[int] = _wire(U32_LIST, default_factory=list)
    max_tokens: list[int] = _wire(U32_LIST, default_factory=list)


@dataclass
class Job:
    COMMAND: ClassVar[Command] = Command.JOB
    job_id: str = _wire(STR)
    type: str = _wire(STR)
    input: bytes = _wire(BIN)
    attempt: int = _wire(U32)
    timeout_s: int = _wire(U32)
    # W3C trace context the worker's spans for this attempt descend from; "" for none.
    traceparent: str = _wire(STR, default="")
    # A flow's parent: its children's outcomes as one msgpack array of maps (id, type, status,
    # result, error); b"" for any other job.
    children: bytes = _wire(BIN, default=b"")


@dataclass
class Progress:
    COMMAND: ClassVar[Command] = Command.PROGRESS
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)
    fraction: float = _wire(F64)
    message: str = _wire(STR)


@dataclass
class Chunk:
    COMMAND: ClassVar[Command] = Command.CHUNK
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)
    data: str = _wire(STR)


@dataclass
class Result:
    COMMAND: ClassVar[Command] = Command.RESULT
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)
    result: bytes = _wire(BIN)
    # The model tokens the attempt used, streamed ones included; 0 for a job that called none.
    prompt_tokens: int = _wire(U32, default=0)
    completion_tokens: int = _wire(U32, default=0)


@dataclass
class Failure:
    COMMAND: ClassVar[Command] = Command.FAILURE
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)
    error: str = _wire(STR)
    retryable: bool = _wire(BOOL)
    prompt_tokens: int = _wire(U32, default=0)  # what the failed attempt used, as in Result
    completion_tokens: int = _wire(U32, default=0)


@dataclass
class CancelJob:
    COMMAND: ClassVar[Command] = Command.CANCEL_JOB
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)


@dataclass
class Canceled:
    COMMAND: ClassVar[Command] = Command.CANCELED
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)


@dataclass
class Spawn:
    COMMAND: ClassVar[Command] = Command.SPAWN
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)
    types: list[str] = _wire(STR_LIST)
    inputs: list[bytes] = _wire(BIN_LIST)  # each child's input, msgpack-encoded
    on_failure: list[str] = _wire(STR_LIST)
    # The model tokens the spawning run used (as in RESULT); 0 for one that called none.
    prompt_tokens: int = _wire(U32, default=0)
    completion_tokens: int = _wire(U32, default=0)


@dataclass
class RateLimited:
    """The model provider refused the call for now (HTTP 429): the broker requeues the job
    without spending an attempt and pauses the model's dispatch for retry_after_ms."""
    COMMAND: ClassVar[Command] = Command.RATE_LIMITED
    job_id: str = _wire(STR)
    attempt: int = _wire(U32)
    retry_after_ms: int = _wire(U32)
    error: str = _wire(STR)  # what the provider said, cut to MAX_ERROR_BYTES


@dataclass
class Heartbeat:
    COMMAND: ClassVar[Command] = Command.HEARTBEAT


@dataclass
class Disconnect:
    COMMAND: ClassVar[Command] = Command.DISCONNECT


Message = Union[
    Submit, Flow, Cancel, Retry, Ping, Reply, Ready, Job, Progress, Chunk, Result, Failure,
    CancelJob, Canceled, Heartbeat, Disconnect, Spawn, RateLimited,
]

# Command id -> message class, for decode().
MESSAGE_TYPES: dict[int, type] = {
    cls.COMMAND: cls
    for cls in (Submit, Flow, Cancel, Retry, Ping, Reply, Ready, Job, Progress, Chunk, Result,
                Failure, CancelJob, Canceled, Heartbeat, Disconnect, Spawn, RateLimited)
}


@functools.cache
def wire_fields(cls: type) -> list[tuple[str, str]]:
    """Returns [(field name, wire type), ...] of a message class, in wire order (computed once
    per class: every message on the hot path asks)."""
    return [(f.name, f.metadata["wire"]) for f in dataclasses.fields(cls)]


_INT_RANGES = {U32: (0, 2**32 - 1), U64: (0, 2**64 - 1), I64: (-(2**63), 2**63 - 1)}


def _check(kind: str, value: Any) -> Any:
    """Returns `value` in the form its wire type is packed as; raises TypeError/ValueError."""
    if kind in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int for {kind}, got {type(value).__name__}")
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {kind}")
        return value
    if kind == F64:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a float for f64, got {type(value).__name__}")
        return float(value)
    if kind == STR:
        if not isinstance(value, str):
            raise TypeError(f"expected a str, got {type(value).__name__}")
        return value
    if kind == BIN:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes for bin, got {type(value).__name__}")
        return bytes(value)
    if kind == BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"expected a bool, got {type(value).__name__}")
        return value
    if kind == STR_LIST:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError("expected a list of str")
        return list(value)
    if kind == BIN_LIST:
        if not isinstance(value, (list, tuple)):
            raise TypeError("expected a list of bytes")
        return [_check(BIN, v) for v in value]
    if kind == U32_LIST:
        if not isinstance(value, (list, tuple)):
            raise TypeError("expected a list of u32")
        return [_check(U32, v) for v in value]
    raise AssertionError(f"unknown wire type {kind}")


def encode_body(msg: Message) -> bytes:
    """Returns the msgpack body (frame 2) of `msg`.

    Requires every field to hold a value of its wire type (raises TypeError/ValueError if not:
    encoding a malformed message is a bug in the caller, not a wire condition).
    """
    values = []
    for name, kind in wire_fields(type(msg)):
        try:
            values.append(_packed(kind, getattr(msg, name)))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{type(msg).__name__}.{name}: {exc}") from None
    return msgpack.packb(values, use_bin_type=True)


def encode(msg: Message) -> list[bytes]:
    """Returns the three frames [signature, command, body] of `msg`, ready for send_multipart."""
    return [SIGNATURE, bytes([msg.COMMAND]), encode_body(msg)]


def _packed(kind: str, value: Any) -> Any:
    """Like _check, but a whole f64 goes out as the smallest int, as msgpack-c 4 packs it."""
    value = _check(kind, value)
    if kind == F64 and value.is_integer() and -(2**63) <= value < 2**64:
        return int(value)
    return value


def decode_body(cls: type, body: bytes) -> Message:
    """Decodes a body (frame 2) into an instance of message class `cls`.

    Raises DecodeError unless `body` is exactly one msgpack array whose first elements have the
    types of cls's fields. Extra trailing elements are ignored, so a newer peer can append fields
    without breaking an older one (as in common/protocol.hpp).
    """
    try:
        values = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types (ExtraData, ValueError...)
        raise DecodeError(f"{cls.__name__}: body is not valid msgpack: {exc}", body, exc) from exc
    if not isinstance(values, list):
        raise DecodeError(
            f"{cls.__name__}: body is a {type(values).__name__}, not an array", body)
    fields = wire_fields(cls)
    if len(values) < len(fields):
        raise DecodeError(
            f"{cls.__name__}: body has {len(values)} fields, needs {len(fields)}", body)
    kwargs = {}
    for (name, kind), value in zip(fields, values):
        try:
            kwargs[name] = _check_decoded(kind, value)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{cls.__name__}.{name}: {exc}", body, exc) from exc
    return cls(**kwargs)


def _check_decoded(kind: str, value: Any) -> Any:
    """Like _check, but a bin must arrive as msgpack bin (bytes), never as a str."""
    if kind == BIN and not isinstance(value, bytes):
        raise TypeError(f"expected msgpack bin, got {type(value).__name__}")
    if kind == BIN_LIST and isinstance(value, list) and not all(isinstance(v, bytes) for v in value):
        raise TypeError("expected an array of msgpack bin")
    return _check(kind, value)


def decode(frames: Sequence[bytes]) -> Message:
    """Decodes the frames of one message (without a ROUTER identity frame) into a message.

    Raises DecodeError (with .raw = the frames) for a wrong frame count, an unknown signature or
    version, an unknown command or a body that does not hold the command's fields.
    """
    raw = [bytes(f) for f in frames]
    if len(raw) != 3:
        raise DecodeError(f"expected 3 frames, got {len(raw)}", raw)
    signature, command, body = raw
    if signature != SIGNATURE:
        raise DecodeError(f"unknown signature {signature[:32]!r}", raw)
    if len(command) != 1:
        raise DecodeError(f"command frame has {len(command)} bytes, expected 1", raw)
    cls = MESSAGE_TYPES.get(command[0])
    if cls is None:
        raise DecodeError(f"unknown command {command[0]}", raw)
    try:
        return decode_body(cls, body)
    except DecodeError as exc:
        raise DecodeError(str(exc), raw, exc.cause) from exc
