"""Writes schemas/vectors/messages.json: encoded SLUICE/1 test vectors.

Both the C++ tests (tests/unit/test_protocol.cpp) and the Python tests
(tests/python/test_protocol.py) decode every vector's body_hex, compare the fields and re-encode
it byte for byte, so the two codecs cannot drift apart.

Each vector is {"name": command name, "command": id, "case": what it exercises,
"fields": [values in wire order], "body_hex": lowercase hex of the msgpack body (frame 2)}.
A bin field is written in "fields" as the lowercase hex of its bytes; every other field is the
plain JSON value (u64 values up to 2**64-1 appear as JSON integers; parse them as uint64).

Rerun after changing schemas/messages.json or the cases below (from the project root, after
scripts/setup.sh has made the virtualenv):

    .venv/bin/python schemas/make_vectors.py

The output is deterministic; commit the regenerated file with the change that needed it.
"""

from __future__ import annotations

import json
import pathlib
import sys

import msgpack

from sluice import protocol as p

OUT = pathlib.Path(__file__).resolve().parent / "vectors" / "messages.json"


def pack(value: object) -> bytes:
    """An opaque job input/result value, packed as the api and the workers pack it."""
    return msgpack.packb(value, use_bin_type=True)


NESTED_INPUT = pack({"text": "Grüße, 世界!", "options": {"top": 5, "ratio": 0.5, "tags": ["a", "b"],
                                                       "raw": b"\x00\xff", "none": None}})

CASES: list[tuple[str, object]] = [
    # SUBMIT
    ("basic", p.Submit(1, "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10", "default", "echo",
                       pack({"hello": "world"}), 0, 3, 60, "", "", "", 0, "", 0, 0, 0, 0, "", [], "")),
    ("u64 req_id near max, negative priority", p.Submit(
        2**64 - 1, "job-a", "default", "sleep", pack({"ms": 10}), -5, 1, 0, "order-42", "9f86d081884c7d65", "0123456789abcdef", 100,
        "user:42", 1, 10000, 1767225600000, 1767229200000, "https://hooks.example.com/sluice?x=1",
        ["succeeded", "failed", "canceled"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 3600)),
    ("priority > 127 and large u32s", p.Submit(
        2**63, "job-b", "tenant-ü", "text_stats", NESTED_INPUT, 200, 2**32 - 1, 2**32 - 1, "clé-ü", "", "admin", 2**32 - 1,
        "clé-ü", 2**32 - 1, 2**32 - 1, 2**64 - 1, 2**64 - 1, "http://ü.example/", ["queued"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        2**32 - 1)),
    ("dedupe", p.Submit(
        5, "7d3f1c2a-9b8e-4f10-8a6b-2c4d5e6f7a8b", "acme", "sentiment", pack({"text": "The room was cold."}), 0, 3, 60,
        "", "", "", 0, "", 0, 0, 0, 0, "", [], "", 0, True)),
    ("priority i64 min, empty strings and empty bin", p.Submit(
        0, "", "", "", b"", -(2**63), 0, 0, "", "", "", 0, "", 0, 0, 0, 0, "", [], "")),
    ("priority i64 max, 40-byte strings (str8)", p.Submit(
        2**64 - 2, "j" * 40, "t" * 32, "type-" * 8, pack([1, -1, 2**40]), 2**63 - 1, 65536, 300, "k" * 255, "h" * 64, "i" * 32, 65536,
        "c" * 128, 1000, 3600000, 2**32, 0, "https://" + "w" * 40,
        ["started", "retrying", "succeeded", "failed", "canceled", "queued"], "t" * 55)),
    # FLOW
    ("two children", p.Flow(9, p.encode_body(p.Submit(0, "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10", "default", "analyze",
                                                      pack({"text": "hi"}), 0, 3, 60, "", "", "", 0, "", 0, 0, 0, 0, "", [], "")),
                            [p.encode_body(p.Submit(0, "1b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10", "default", "sentiment",
                                                    pack({"text": "hi"}), 0, 3, 60, "", "", "", 0, "", 0, 0, 0, 0, "", [], "")),
                             b""], ["fail_parent", "ignore"])),
    ("no children, empty parent", p.Flow(2**64 - 1, b"", [], [])),
    # CANCEL / PING / REPLY
    ("basic", p.Cancel(42, "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10")),
    ("basic", p.Retry(43, "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10")),
    ("basic", p.Ping(7)),
    ("u64 max", p.Ping(2**64 - 1)),
    ("accepted", p.Reply(1, 202, "", "", "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10", "queued", 0)),
    ("cached", p.Reply(8, 200, "", "cached", "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10", "succeeded", 0, True)),
    ("joined", p.Reply(9, 202, "", "", "7d3f1c2a-9b8e-4f10-8a6b-2c4d5e6f7a8b", "running", 0, False,
                       "0b6f7c1e-2b1d-4c55-9a57-3c1c7b1e9f10")),
    ("error with non-ASCII message", p.Reply(
        2**32, 422, "unknown_job_type", "no worker has declared type «résumé»", "", "", 0)),
    ("rate limited", p.Reply(3, 429, "rate_limited", "past this key's limit", "", "", 2**32 - 1)),
    # READY
    ("python worker", p.Ready("host-1234", "python", ["echo", "fail", "sleep", "text_stats"], 4,
                              ["", "", '{"properties":{"ms":{"type":"integer"}},"type":"object"}', ""])),
    ("no types, non-ASCII name", p.Ready("wörker-ß-東京", "cpp", [], 0, [])),
    ("models and token estimates", p.Ready("host-5678", "python", ["chat", "echo"], 2, ["", ""],
                                           ["SmolLM2-135M-Instruct", ""], [4, 0], [256, 2**32 - 1])),
    # JOB
    ("basic", p.Job("job-1", "echo", pack("hi"), 1, 30, "")),
    ("bin holding a nested msgpack map", p.Job("job-2", "text_stats", NESTED_INPUT, 3, 0,
                                                         "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")),
    ("empty input bin, u32 max attempt", p.Job("job-3", "echo", b"", 2**32 - 1, 1, "ü")),
    ("a flow's parent with its children's outcomes", p.Job("job-4", "analyze", pack({"text": "hi"}), 2, 60, "", pack(
        [{"id": "c1", "type": "sentiment", "status": "succeeded", "result": {"label": "positive"}, "error": ""},
         {"id": "c2", "type": "entities", "status": "failed", "result": None, "error": "boom «x»"}]))),
    # PROGRESS
    ("fraction 0.25", p.Progress("job-1", 1, 0.25, "a quarter")),
    ("fraction 0.5, empty message", p.Progress("job-1", 2, 0.5, "")),
    ("fraction 0.999, non-ASCII message", p.Progress("job-1", 1, 0.999, "fertig ✓")),
    ("fraction 1/3", p.Progress("job-1", 1, 1 / 3, "third")),
    ("whole fraction 0.0 goes out as int 0", p.Progress("job-1", 1, 0.0, "start")),
    ("whole fraction 1.0 goes out as int 1", p.Progress("job-1", 1, 1.0, "done")),
    # CHUNK
    ("basic", p.Chunk("job-1", 1, "Hello")),
    ("non-ASCII and emoji", p.Chunk("job-1", 1, "naïve café 🙂\n")),
    ("empty", p.Chunk("job-1", 1, "")),
    # RESULT
    ("basic", p.Result("job-1", 1, pack({"slept_ms": 100}))),
    ("nested map result", p.Result("job-2", 3, pack(
        {"words": 3, "characters": 17, "sentences": 1, "top_words": [["a", 2], ["b", 1]]}))),
    ("nil result", p.Result("job-3", 1, pack(None))),
    ("300-byte result (bin16)", p.Result("job-4", 1, bytes(range(256)) + b"\x01" * 44)),
    ("token usage", p.Result("job-5", 2, pack({"text": "hi"}), 37, 2**16)),
    # FAILURE
    ("retryable", p.Failure("job-1", 1, "timeout after 5 s", True)),
    ("not retryable", p.Failure("job-1", 2, "NonRetryableError: bad input «x»", False)),
    ("tokens used before failing", p.Failure("job-1", 3, "ValueError: bad JSON", True, 120, 2**32 - 1)),
    # RATE_LIMITED
    ("retry after 1.5 s", p.RateLimited("job-1", 1, 1500, "429 Too Many Requests")),
    ("u32 max retry after, non-ASCII error", p.RateLimited("job-2", 2**32 - 1, 2**32 - 1, "trop de requêtes")),
    # CANCEL_JOB / CANCELED
    ("basic", p.CancelJob("job-1", 1)),
    ("basic", p.Canceled("job-1", 2)),
    # SPAWN
    ("three children", p.Spawn("job-1", 1, ["sentiment", "entities", "summarize"],
                               [pack({"text": "a"}), pack({"text": "b"}), b""], ["fail_parent", "ignore", "fail_parent"])),
    ("none", p.Spawn("job-1", 2**32 - 1, [], [], [])),
    # HEARTBEAT / DISCONNECT
    ("empty body", p.Heartbeat()),
    ("empty body", p.Disconnect()),
]


def field_to_json(kind: str, value: object) -> object:
    if kind == p.BIN_LIST:
        return [v.hex() for v in value]
    return value.hex() if kind == p.BIN else value


def vector(case: str, msg: p.Message) -> dict:
    fields = [field_to_json(kind, getattr(msg, name)) for name, kind in p.wire_fields(type(msg))]
    return {
        "name": msg.COMMAND.name,
        "command": int(msg.COMMAND),
        "case": case,
        "fields": fields,
        "body_hex": p.encode_body(msg).hex(),
    }


def main() -> int:
    vectors = [vector(case, msg) for case, msg in CASES]
    missing = set(p.Command) - {p.Command(v["command"]) for v in vectors}
    if missing:
        print(f"make_vectors: no vector for {sorted(c.name for c in missing)}", file=sys.stderr)
        return 1
    text = "[\n" + ",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in vectors) + "\n]\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"make_vectors: wrote {len(vectors)} vectors to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
