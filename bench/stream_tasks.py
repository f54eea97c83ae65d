"""Tasks the benchmark runs on a Python worker (`sluice-worker bench.stream_tasks`)."""
import asyncio
import time

from sluice import task


@task("bench_stream")
async def bench_stream(input, ctx):
    """After `delay_ms` (time for the client to connect), emits `chunks` chunks, `interval_ms`
    apart, each carrying the wall-clock time (ns) it was emitted at, so a client on the same
    machine can tell how long each took to reach it."""
    await asyncio.sleep(input["delay_ms"] / 1000)
    for _ in range(input["chunks"]):
        await ctx.emit(str(time.time_ns()))
        await asyncio.sleep(input["interval_ms"] / 1000)
    return {"chunks": input["chunks"]}
