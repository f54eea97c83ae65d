"""Tasks for the client's tests (tests/e2e/test_client.py, test_console.py; `sluice-worker
client_tasks`, tests/e2e on PYTHONPATH)."""
import asyncio

from sluice import task


@task("drip")
async def drip(input, ctx):
    """Emits `count` chunks "c0 ", "c1 ", ... with a progress event after each, `pause_ms` apart."""
    count = input["count"]
    for i in range(count):
        await ctx.emit(f"c{i} ")
        await ctx.progress((i + 1) / count, f"chunk {i + 1} of {count}")
        await asyncio.sleep(input.get("pause_ms", 0) / 1000)
    return {"count": count}


@task("flaky_stream")
async def flaky_stream(input, ctx):
    """Streams "Hel", "lo" and fails on its first attempt; streams "Hello", " world" and
    succeeds on the next one."""
    if ctx.attempt == 1:
        await ctx.emit("Hel")
        await ctx.emit("lo")
        await asyncio.sleep(0.2)
        raise RuntimeError("the model went away")
    await ctx.emit("Hello")
    await ctx.emit(" world")
    return {"text": "Hello world"}
