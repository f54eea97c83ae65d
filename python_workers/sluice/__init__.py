"""Sluice: Python worker runtime and SLUICE/1 codec (see schemas/PROTOCOL.md).

    from sluice import task

    @task("summarize")
    async def summarize(input, ctx):
        await ctx.progress(0.5, "thinking")
        return {"summary": ...}

Then serve it: `sluice-worker my_module --broker tcp://broker:5556`.
"""

from .context import JobContext, SyncJobContext
from .errors import DecodeError, NonRetryableError, SluiceError
from .registry import TaskRegistry, registry, task
from .worker import Worker, WorkerConfig

__all__ = [
    "DecodeError", "JobContext", "NonRetryableError", "SluiceError", "SyncJobContext",
    "TaskRegistry", "Worker", "WorkerConfig", "registry", "task",
]
