"""What a peer or a slow or absent Redis can make happen again and again costs a handful of
broker log lines: a flood of malformed messages is logged once per kind and summed up every
10 s; a broker started while Redis loads a big AOF says once that it waits, then that it is
ready, instead of a line per retry; a Redis that is down is reported once, not per reconnect."""
import re
import time

import zmq

from pipeline import Pipeline

FLOOD = 10000
# A Lua script that overwrites one key ARGV[1] times: Redis appends every SET to the AOF (a
# script's effects are what it propagates), so replaying the AOF takes seconds while the data
# set stays one key.
OVERWRITE = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', KEYS[1], i) end"


def new_lines(p: Pipeline, before: int) -> list[str]:
    return p.broker_log().splitlines()[before:]


def test_a_flood_of_malformed_messages_costs_a_handful_of_lines(fresh_pipeline):
    p = fresh_pipeline.start()
    deadline = time.monotonic() + 15
    while "ready:" not in p.broker_log():
        assert time.monotonic() < deadline, p.broker_log()
        time.sleep(0.05)
    before = len(p.broker_log().splitlines())
    context = zmq.Context()
    try:
        # Peers with allowed keys (a compromised api or worker): their messages reach the broker.
        for endpoint, command, component in ((p.frontend, b"\x01", "api"), (p.backend, b"\x10", "worker")):
            rogue = p.allow(context.socket(zmq.DEALER), component)
            rogue.setsockopt(zmq.LINGER, 0)
            rogue.connect(endpoint)
            for i in range(FLOOD // 4):
                rogue.send_multipart([b"SLUICE/2", command, b""])            # bad version
                rogue.send_multipart([b"SLUICE/1", command, b"\x98\x01"])    # truncated body
            # One connection keeps order: an answer to this means the flood before it was read.
            if endpoint == p.frontend:
                rogue.send_multipart([b"SLUICE/1", b"\x03", b"\x91\x07"])     # PING 7
            else:
                rogue.send_multipart([b"SLUICE/1", b"\x18", b"\x90"])         # HEARTBEAT: DISCONNECT
            assert rogue.poll(30000), "the broker stopped answering"
            rogue.close()
    finally:
        context.term()

    lines = new_lines(p, before)
    assert len(lines) <= 4, lines
    assert sum("dropped malformed message" in line for line in lines) == 2, lines
    assert sum("with a malformed body" in line for line in lines) == 2, lines
    # Within the next 10 s, one summary line per kind says how many were not logged.
    deadline = time.monotonic() + 15
    while len(new_lines(p, before)) < 8:
        assert time.monotonic() < deadline, new_lines(p, before)
        time.sleep(0.2)
    time.sleep(0.5)
    lines = new_lines(p, before)
    assert len(lines) == 8, lines
    summaries = sorted(re.search(r"dropped (\d+) more (.*) in the last 10 s", line).group(1, 2) for line in lines[4:])
    assert summaries == [(str(FLOOD // 4 - 1), f"malformed messages from the {side}") for side in ("backend", "frontend")] + \
        [(str(FLOOD // 4 - 1), f"messages with a malformed body from the {side}") for side in ("backend", "frontend")], lines


def test_a_broker_started_while_redis_loads_its_aof_waits_quietly(fresh_pipeline):
    p = fresh_pipeline.start()
    with p.redis_client() as redis:
        for _ in range(30):
            redis.call("EVAL", OVERWRITE, 1, "sluice:test:overwritten", 100000)
    p.stop_process(p.broker)
    p.stop_process(p.redis)  # SIGTERM: Redis writes out its AOF and exits
    p.start_redis(wait=False)
    log = p.workdir / f"broker-{len(p.procs)}.log"
    p.start_broker()

    deadline = time.monotonic() + 120
    while "ready:" not in log.read_text():
        assert p.broker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    loaded = re.findall(r"DB loaded from append only file: ([\d.]+) seconds", (p.workdir / "redis.log").read_text())
    assert float(loaded[-1]) >= 1.0, f"Redis loaded its AOF in {loaded[-1]} s: too fast to show anything"
    lines = log.read_text().splitlines()
    assert sum("Redis is loading its data" in line for line in lines) == 1, lines
    assert not any("resync failed" in line for line in lines), lines
    assert len(lines) <= 8, lines


def test_a_broker_whose_redis_is_down_says_so_once(fresh_pipeline):
    p = fresh_pipeline.start()
    p.redis.kill()
    p.redis.wait()
    time.sleep(3)  # six reconnect attempts
    assert sum("unreachable" in line for line in p.broker_log().splitlines()) == 1, p.broker_log()
    p.start_redis()
    deadline = time.monotonic() + 15
    while p.broker_log().count("ready:") < 2:
        assert time.monotonic() < deadline, p.broker_log()
        time.sleep(0.1)
