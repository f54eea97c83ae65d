"""Tasks for the flow tests (tests/e2e/test_flows.py; `sluice-worker flow_tasks`, tests/e2e on
PYTHONPATH)."""
from sluice import task


@task("collect")
async def collect(input, ctx):
    """A flow's parent: returns what it got of its children, and which attempt it runs as."""
    return {"attempt": ctx.attempt,
            "children": [{key: child[key] for key in ("id", "type", "status", "result", "error")}
                         for child in ctx.children]}


@task("fan_out")
async def fan_out(input, ctx):
    """Spawns a `sleep` child per entry of input["sleeps"] (ms) on its first run; on the next,
    returns the total the children slept and how many runs it took."""
    if not ctx.children:
        for ms in input["sleeps"]:
            await ctx.spawn("sleep", {"ms": ms}, on_failure=input.get("on_failure", "fail_parent"))
        return {"ignored": "a spawning run's value is not kept"}
    return {"slept_ms": sum(child["result"]["slept_ms"] for child in ctx.children if child["result"]),
            "statuses": [child["status"] for child in ctx.children], "attempt": ctx.attempt}


@task("spawn_unknown")
async def spawn_unknown(input, ctx):
    """Spawns a child of a type no worker declares."""
    await ctx.spawn("no_such_type", {})
