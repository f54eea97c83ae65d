"""Sluice: Python worker runtime, SLUICE/1 codec (see schemas/PROTOCOL.md), and the HTTP client.

    from sluice import task

    @task("summarize")
    async def summarize(input, ctx):
        await ctx.progress(0.5, "thinking")
        return {"summary": ...}

Then serve it: `sluice-worker my_module --broker tcp://broker:5556`. Call the api with
`sluice.client.Client` (or the `sluice` command).

The worker's names are imported on first use (PEP 562), so `import sluice.client` needs neither
pyzmq nor msgpack: an application that only submits jobs installs `sluice` without the worker
extras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import DecodeError, NonRetryableError, RateLimitedError, SluiceError
from .registry import ModelUse, TaskRegistry, registry, task

if TYPE_CHECKING:
    from .context import JobContext, SyncJobContext
    from .worker import Worker, WorkerConfig

# Name -> the module that defines it, imported when the name is first read.
_LAZY = {
    "JobContext": "context", "SyncJobContext": "context", "Worker": "worker", "WorkerConfig": "worker",
}

__all__ = [
    "DecodeError", "JobContext", "ModelUse", "NonRetryableError", "RateLimitedError", "SluiceError",
    "SyncJobContext", "TaskRegistry", "Worker", "WorkerConfig", "registry", "task",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sluice' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
