"""Task registration: the @task decorator and the registry a worker serves.

    from sluice import task

    @task("echo")                 # explicit job type
    async def echo(input, ctx): ...

    @task                         # job type = function name ("resize")
    def resize(input, ctx): ...   # sync handlers run in the worker's thread pool

A handler takes (input, ctx): input is the job's decoded msgpack value, ctx a JobContext (async
handlers) or SyncJobContext (sync handlers), see sluice/context.py. Its return value, packed with
msgpack, is the job's result.

Typed inputs: when the handler's first parameter is annotated with a pydantic model,

    class SummarizeInput(BaseModel):
        text: str
        max_words: int | None = Field(None, ge=1, le=500)

    @task
    async def summarize(input: SummarizeInput, ctx): ...

the registry derives the model's JSON Schema, the worker declares it in READY (the api then
answers 422 invalid_input to a submit that does not fit it), and the worker validates the input
into a model instance (strict mode) before calling the handler; an input that does not fit fails
the job without a retry.

Token budgets: a task that calls a model says which, and how the broker should estimate a job's
tokens before it runs (README.md, "Token budgets"):

    @task("chat", model=ModelUse("gpt-4o-mini", chars_per_token=4, max_tokens=256))

`model` may also be a function returning a ModelUse (or None), called when the worker says
READY, for a model picked by configuration.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterator

if typing.TYPE_CHECKING:
    import pydantic

# Job type names the broker accepts (common/names.hpp, valid_job_type): 1-128 of letters, digits and _.:-
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class ModelUse:
    """The model a task calls and how the broker estimates a job's tokens before it runs:
    ceil(input bytes / chars_per_token) + max_tokens (the input's own `max_tokens` when it has
    one); chars_per_token 0 leaves the prompt out. The broker settles the estimate with what the
    worker reports the job used."""

    model: str
    chars_per_token: int = 4
    max_tokens: int = 256


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: its job type name, the handler, whether the handler is async, and
    for a typed handler its input model and that model's JSON Schema as compact JSON text
    (None and "" for a handler of plain inputs)."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    input_model: type[pydantic.BaseModel] | None = None
    schema: str = ""
    # The model it calls (ModelUse, or a function returning one, or None): READY declares it.
    model: ModelUse | Callable[[], ModelUse | None] | None = None


class TaskRegistry:
    """Job type name -> TaskSpec. Not thread-safe: register tasks at import time."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskSpec] = {}

    def register(self, name: str, fn: Callable[..., Any],
                 model: ModelUse | Callable[[], ModelUse | None] | None = None) -> TaskSpec:
        """Registers `fn` as the handler of job type `name` and returns its spec.

        Raises ValueError for an invalid name, a name already taken by another function
        (registering the same function again, e.g. on a module reload, is allowed), or an input
        model whose JSON Schema is larger than MAX_SCHEMA_BYTES.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"invalid task name {name!r}: use 1-128 letters, digits and _.:-")
        if not callable(fn):
            raise TypeError(f"task {name!r}: handler is not callable")
        old = self._tasks.get(name)
        if old is not None and _qualified(old.fn) != _qualified(fn):
            raise ValueError(f"task {name!r} is already registered by {_qualified(old.fn)}")
        uses = model
        model = input_model(fn)
        schema = ""
        if model is not None:
            from .protocol import MAX_SCHEMA_BYTES  # a typed handler's worker has the codec

            schema = json.dumps(model.model_json_schema(), separators=(",", ":"), sort_keys=True)
            if len(schema.encode()) > MAX_SCHEMA_BYTES:
                raise ValueError(f"task {name!r}: the JSON Schema of {model.__name__} is "
                                 f"{len(schema.encode())} bytes, more than {MAX_SCHEMA_BYTES}")
        spec = TaskSpec(name, fn, inspect.iscoroutinefunction(fn), model, schema, uses)
        self._tasks[name] = spec
        return spec

    def get(self, name: str) -> TaskSpec | None:
        """Returns the spec of job type `name`, or None when no task has that name."""
        return self._tasks.get(name)

    def names(self) -> list[str]:
        """Returns the registered job type names, sorted."""
        return sorted(self._tasks)

    def schemas(self) -> list[str]:
        """Returns the input schemas in the order of names(), "" for a task of plain inputs."""
        return [self._tasks[n].schema for n in self.names()]

    def models(self) -> tuple[list[str], list[int], list[int]]:
        """Returns READY's models, chars_per_token and max_tokens, in the order of names() ("", 0,
        0 for a task that calls no model); three empty lists when no task calls one."""
        uses = []
        for name in self.names():
            use = self._tasks[name].model
            uses.append(use() if callable(use) else use)
        if not any(uses):
            return [], [], []
        return ([u.model if u else "" for u in uses], [u.chars_per_token if u else 0 for u in uses],
                [u.max_tokens if u else 0 for u in uses])

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter([self._tasks[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self._tasks)


def input_model(fn: Callable[..., Any]) -> type[pydantic.BaseModel] | None:
    """Returns the pydantic model `fn`'s first parameter is annotated with, else None (no
    parameter, no annotation, another type, or an annotation that does not resolve)."""
    try:
        first = next(iter(inspect.signature(fn).parameters.values()), None)
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
        hint = typing.get_type_hints(target).get(first.name) if first is not None else None
    except (TypeError, ValueError, NameError):
        return None
    # pydantic is imported here only if something imported it: a model's module did, so without
    # it no annotation can be a model, and a client-only install never needs it.
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(hint, type):
        return None
    return hint if issubclass(hint, pydantic.BaseModel) else None


def as_plain(value: Any) -> Any:
    """Returns a typed handler's input as plain data: a model as the dict of the fields its input
    gave (defaults left out), anything else unchanged. Lets a handler keep one code path for the
    model the worker passes and a dict passed by a direct call."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(exclude_unset=True)
    return value


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# The registry @task fills by default and sluice-worker serves.
registry = TaskRegistry()


def task(name_or_fn: Any = None, *, name: str | None = None,
         registry: TaskRegistry | None = None,
         model: ModelUse | Callable[[], ModelUse | None] | None = None) -> Any:
    """Registers a task handler. Use as @task, @task("type"), or @task(name="type").

    Returns the function unchanged, so it can still be called directly (e.g. in tests).
    `registry` picks another registry than the module-level default one; `model` says which
    model the task calls (ModelUse, see the module's docstring).
    """
    target = registry if registry is not None else globals()["registry"]

    if callable(name_or_fn):  # bare @task
        target.register(name or name_or_fn.__name__, name_or_fn, model)
        return name_or_fn

    chosen = name_or_fn if name_or_fn is not None else name

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        target.register(chosen or fn.__name__, fn, model)
        return fn

    return decorate
