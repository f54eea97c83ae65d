"""SLUICE/1 codec tests: the shared vectors round-trip byte for byte, bad input is a DecodeError."""

from __future__ import annotations

import json
import pathlib

import msgpack
import pytest

from sluice import protocol as p
from sluice.errors import DecodeError, SluiceError

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"
VECTORS = json.loads((SCHEMAS / "vectors" / "messages.json").read_text(encoding="utf-8"))
SPEC = json.loads((SCHEMAS / "messages.json").read_text(encoding="utf-8"))


def test_message_table_matches_messages_json():
    assert p.SIGNATURE.decode() == SPEC["protocol"]
    spec = {m["id"]: m for m in SPEC["messages"]}
    assert set(spec) == set(p.MESSAGE_TYPES) == {int(c) for c in p.Command}
    for command_id, cls in p.MESSAGE_TYPES.items():
        assert p.command_name(command_id) == spec[command_id]["name"]
        assert [list(f) for f in p.wire_fields(cls)] == spec[command_id]["fields"]


def test_command_name_of_unknown_id():
    assert p.command_name(99) == "UNKNOWN(99)"


def test_every_command_has_a_vector():
    assert {v["command"] for v in VECTORS} == {int(c) for c in p.Command}
    assert all(v["name"] == p.command_name(v["command"]) for v in VECTORS)


def _expected_fields(vector):
    cls = p.MESSAGE_TYPES[vector["command"]]
    return [bytes.fromhex(value) if kind == p.BIN
            else [bytes.fromhex(v) for v in value] if kind == p.BIN_LIST else value
            for (_, kind), value in zip(p.wire_fields(cls), vector["fields"])]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['name']}-{v['case']}")
def test_vector_decodes_and_reencodes_byte_for_byte(vector):
    body = bytes.fromhex(vector["body_hex"])
    frames = [b"SLUICE/1", bytes([vector["command"]]), body]
    msg = p.decode(frames)
    assert type(msg) is p.MESSAGE_TYPES[vector["command"]]
    assert [getattr(msg, name) for name, _ in p.wire_fields(type(msg))] == _expected_fields(vector)
    assert p.encode(msg) == frames
    # Building the message from the listed field values gives the same bytes.
    assert p.encode_body(type(msg)(*_expected_fields(vector))) == body


def test_f64_is_float64_unless_whole_and_ints_are_smallest():
    body = p.encode_body(p.Progress("j", 1, 0.25, ""))
    assert body == bytes.fromhex("94a16a01cb3fd0000000000000a0")
    # A whole f64 goes out as the smallest int, exactly as msgpack-c 4 packs a double.
    assert p.encode_body(p.Progress("j", 300, 1, "")) == bytes.fromhex("94a16acd012c01a0")
    assert p.encode_body(p.Progress("j", 300, 1.0, "")) == bytes.fromhex("94a16acd012c01a0")
    assert p.encode_body(p.Submit(1, "", "", "", b"", -1, 200, 0, "", "", "", 0, "", 1000, 0, 0, 300, "", [])) == (
        bytes.fromhex("dc001601a0a0a0c400ffccc800a0a0a000a0cd03e80000cd012ca090a000c2"))


def test_f64_sent_as_int_by_msgpack_c_is_accepted():
    # msgpack-c 4.1 packs an integral double (1.0) as an int; decode must still give a float.
    msg = p.decode([b"SLUICE/1", bytes([p.Command.PROGRESS]), msgpack.packb(["j", 1, 1, "done"])])
    assert msg == p.Progress("j", 1, 1.0, "done") and isinstance(msg.fraction, float)


def test_extra_trailing_fields_are_ignored():
    body = msgpack.packb(["job", 2, "future field", 7], use_bin_type=True)
    assert p.decode([b"SLUICE/1", b"\x16", body]) == p.CancelJob("job", 2)


def _frames(command: int, fields: list) -> list[bytes]:
    return [b"SLUICE/1", bytes([command]), msgpack.packb(fields, use_bin_type=True)]


GOOD_JOB = ["job-1", "echo", b"\xc0", 1, 30]


@pytest.mark.parametrize("frames, why", [
    ([b"SLUICE/1", b"\x11"], "frame count"),
    ([b"SLUICE/1", b"\x11", msgpack.packb(GOOD_JOB), b"extra"], "frame count"),
    ([], "frame count"),
    ([b"SLUICE/2", b"\x11", msgpack.packb(GOOD_JOB, use_bin_type=True)], "signature"),
    ([b"MDPW01", b"\x11", msgpack.packb(GOOD_JOB, use_bin_type=True)], "signature"),
    ([b"SLUICE/1", b"\x63", msgpack.packb(GOOD_JOB, use_bin_type=True)], "unknown command"),
    ([b"SLUICE/1", b"", msgpack.packb(GOOD_JOB, use_bin_type=True)], "command frame"),
    ([b"SLUICE/1", b"\x11\x00", msgpack.packb(GOOD_JOB, use_bin_type=True)], "command frame"),
    ([b"SLUICE/1", b"\x11", msgpack.packb(GOOD_JOB, use_bin_type=True)[:-3]], "truncated"),
    ([b"SLUICE/1", b"\x11", b""], "empty body"),
    ([b"SLUICE/1", b"\x11", b"\xc1"], "never-used byte"),
    ([b"SLUICE/1", b"\x11", msgpack.packb(GOOD_JOB, use_bin_type=True) + b"\x00"], "extra data"),
    ([b"SLUICE/1", b"\x11", msgpack.packb({"job_id": "x"})], "map body"),
    ([b"SLUICE/1", b"\x11", msgpack.packb("job-1")], "str body"),
    (_frames(17, GOOD_JOB[:4]), "missing field"),
    (_frames(17, [1, "echo", b"", 1, 30]), "int for str"),
    (_frames(17, ["job-1", "echo", "not bin", 1, 30]), "str for bin"),
    (_frames(17, ["job-1", "echo", b"", -1, 30]), "negative u32"),
    (_frames(17, ["job-1", "echo", b"", 2**32, 30]), "u32 overflow"),
    (_frames(17, ["job-1", "echo", b"", 1.0, 30]), "float for u32"),
    (_frames(17, ["job-1", "echo", b"", True, 30]), "bool for u32"),
    (_frames(21, ["job-1", 1, "boom", 1]), "int for bool"),
    (_frames(18, ["job-1", 1, "0.5", ""]), "str for f64"),
    (_frames(16, ["w", "python", ["echo", 3], 4]), "non-str in [str]"),
    (_frames(16, ["w", "python", "echo", 4]), "str for [str]"),
    (_frames(1, [-1, "j", "t", "echo", b"", 0, 1, 1]), "negative u64"),
    (_frames(1, [1, "j", "t", "echo", b"", 2**63, 1, 1]), "i64 overflow"),
    ([b"SLUICE/1", b"\x13", b"\x93\xa1j\x01\xa2\xff\xfe"], "invalid UTF-8 in str"),
])
def test_decode_error(frames, why):
    with pytest.raises(DecodeError) as info:
        p.decode(frames)
    assert isinstance(info.value, SluiceError)
    assert info.value.raw == [bytes(f) for f in frames]  # keeps what arrived, for the log


def test_decode_error_keeps_cause():
    with pytest.raises(DecodeError) as info:
        p.decode([b"SLUICE/1", b"\x11", b"\x95\xa1"])
    assert info.value.cause is not None


def test_decode_accepts_zmq_frames_as_memoryviews():
    frames = p.encode(p.Chunk("j", 1, "tok"))
    assert p.decode([memoryview(f) for f in frames]) == p.Chunk("j", 1, "tok")


@pytest.mark.parametrize("msg", [
    p.Job("j", "echo", "not bytes", 1, 1),
    p.Job("j", "echo", b"", -1, 1),
    p.Failure("j", 1, "e", 1),
    p.Ready("w", "python", "echo", 1, []),
    p.Ready("w", "python", ["echo"], 1, [None]),
    p.Ping(2**64),
    p.Progress("j", 1, "0.5", ""),
])
def test_encode_rejects_wrong_field_types(msg):
    with pytest.raises((TypeError, ValueError)):
        p.encode(msg)
