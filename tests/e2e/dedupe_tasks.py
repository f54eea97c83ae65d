"""A task for the single-flight tests (tests/e2e/test_dedupe.py, tests/faults/test_dedupe_restart.py;
`sluice-worker dedupe_tasks`, tests/e2e on PYTHONPATH): it counts its handler calls in a file
and holds its job running until the test opens a gate, so a test can join it while it runs."""
import asyncio
import os

from sluice import NonRetryableError, task


@task("gated")
async def gated(input, ctx):
    """Input {"runs": path, "gate": path, "fail": bool (optional), ...}: appends "{job id}
    {attempt}" to the file `runs` (one line per handler call), streams "c0 " and "c1 " with a
    progress event after each, waits until the file `gate` exists, streams "end", then fails
    (not retryable) when `fail`, else returns {"text": "c0 c1 end"}."""
    with open(input["runs"], "a", encoding="utf-8") as runs:
        runs.write(f"{ctx.job_id} {ctx.attempt}\n")
    for i in range(2):
        await ctx.emit(f"c{i} ")
        await ctx.progress((i + 1) / 2, f"chunk {i + 1} of 2")
    while not os.path.exists(input["gate"]):
        await asyncio.sleep(0.02)
    await ctx.emit("end")
    if input.get("fail"):
        raise NonRetryableError("gated job failed on purpose")
    return {"text": "c0 c1 end"}
