"""Tasks for tests/e2e/test_read_bounds.py and test_websocket.py (`sluice-worker big_tasks`,
tests/e2e on PYTHONPATH)."""
import asyncio

from sluice import task


@task("big_chunks")
async def big_chunks(input, ctx):
    """Emits `count` chunks of `size` characters each, after `delay_ms` (0), pausing `pause_ms`
    (0) after every `batch` chunks, so a long stream does not outrun the worker's socket."""
    await asyncio.sleep(input.get("delay_ms", 0) / 1000)
    batch = input.get("batch", input["count"])
    for i in range(input["count"]):
        await ctx.emit("x" * input["size"])
        if (i + 1) % batch == 0:
            await asyncio.sleep(input.get("pause_ms", 0) / 1000)
    return {"count": input["count"]}
