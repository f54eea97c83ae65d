"""Tasks for tests/e2e/test_read_bounds.py (`sluice-worker big_tasks`, tests/e2e on PYTHONPATH)."""
from sluice import task


@task("big_chunks")
async def big_chunks(input, ctx):
    """Emits `count` chunks of `size` characters each."""
    for _ in range(input["count"]):
        await ctx.emit("x" * input["size"])
    return {"count": input["count"]}
