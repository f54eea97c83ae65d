"""Load and checks shared by the fault tests: submit in the background, then prove that every
accepted job succeeded exactly once."""
import asyncio
import threading
import time

import msgpack

from pipeline import Pipeline, submit_all

TERMINAL_EVENTS = {b"succeeded", b"failed", b"canceled"}


class Load:
    """Submits `bodies` from a background thread; `accepted()` maps each 202's job id to its body."""

    def __init__(self, url: str, bodies: list[dict], connections: int = 16):
        self.bodies = bodies
        self.results = None
        self.thread = threading.Thread(target=self._run, args=(url, connections))
        self.thread.start()

    def _run(self, url, connections):
        self.results = asyncio.run(submit_all(url, self.bodies, connections))

    def accepted(self, timeout: float = 120) -> dict[str, dict]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "load generator hung"
        return {reply["id"]: body for (status, reply), body in zip(self.results, self.bodies) if status == 202}

    def statuses(self) -> dict[int, int]:
        counts = {}
        for status, _ in self.results:
            counts[status] = counts.get(status, 0) + 1
        return counts


def wait_stored(p: Pipeline, count: int, timeout: float = 30) -> None:
    """Waits until Redis holds `count` jobs of the default tenant: a fault mid-load strikes once
    there is enough of the load to check, however fast this machine stores it."""
    deadline = time.monotonic() + timeout
    while True:
        with p.redis_client() as redis:
            if redis.call("ZCARD", "sluice:jobs:default") >= count:
                return
        assert time.monotonic() < deadline, f"the load never reached {count} stored jobs"
        time.sleep(0.05)


def wait_terminal(p: Pipeline, ids: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        with p.redis_client() as redis:
            statuses = redis.pipeline([["HGET", f"sluice:job:{i}", "status"] for i in pending])
        pending = [i for i, s in zip(pending, statuses) if s not in (b"succeeded", b"failed", b"canceled")]
        if not pending:
            return
        assert time.monotonic() < deadline, f"{len(pending)} jobs never finished, e.g. {pending[:3]}"
        time.sleep(0.5)


def assert_exactly_once(p: Pipeline, expected: dict[str, object]) -> dict[str, list]:
    """Every job succeeded with the expected result, recorded one success in its history and
    streamed exactly one terminal event, its last. Returns each job's history."""
    ids = list(expected)
    wait_terminal(p, ids)
    with p.redis_client() as redis:
        jobs = redis.pipeline([["HMGET", f"sluice:job:{i}", "status", "result"] for i in ids])
        histories = redis.pipeline([["LRANGE", f"sluice:history:{i}", 0, -1] for i in ids])
        streams = redis.pipeline([["XRANGE", f"sluice:events:{i}", "-", "+"] for i in ids])
    decoded = {}
    for job_id, (status, result), history, stream in zip(ids, jobs, histories, streams):
        assert status == b"succeeded", (job_id, status)
        assert msgpack.unpackb(result, raw=False) == expected[job_id], job_id
        entries = [msgpack.unpackb(e, raw=False) for e in history]
        assert [e[4] for e in entries].count("succeeded") == 1, (job_id, entries)
        events = [dict(zip(fields[::2], fields[1::2]))[b"event"] for _, fields in stream]
        assert [e in TERMINAL_EVENTS for e in events].count(True) == 1, (job_id, events)
        assert events[-1] == b"succeeded", (job_id, events)
        seqs = [int(entry_id.split(b"-")[0]) for entry_id, _ in stream]
        assert seqs == list(range(1, len(seqs) + 1)), (job_id, seqs)
        decoded[job_id] = entries
    return decoded
