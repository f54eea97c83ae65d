"""Typed inputs on the worker side (sluice/registry.py, worker.py): a handler annotated with a
pydantic model gets its JSON Schema declared in READY and its input validated into the model;
plain handlers are unchanged; schemas past the byte bounds are refused up front."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from sluice import protocol as p
from sluice.registry import TaskRegistry, as_plain, task
from sluice.worker import Worker, WorkerConfig

from test_worker import pack, run, serving, unpack


class SummarizeInput(BaseModel):
    text: str
    max_words: int | None = Field(None, ge=1, le=500)


def typed_registry() -> TaskRegistry:
    reg = TaskRegistry()

    @task("typed", registry=reg)
    async def typed(input: SummarizeInput, ctx):
        return {"model": type(input).__name__, "text": input.text, "max_words": input.max_words}

    @task("plain", registry=reg)
    async def plain(value, ctx):
        return value

    @task("sync_typed", registry=reg)
    def sync_typed(input: SummarizeInput, ctx):
        return isinstance(input, SummarizeInput)

    return reg


def test_a_model_annotation_gives_the_task_its_schema():
    reg = typed_registry()
    spec = reg.get("typed")
    assert spec.input_model is SummarizeInput
    schema = json.loads(spec.schema)
    assert schema == SummarizeInput.model_json_schema()
    assert schema["required"] == ["text"]
    assert reg.get("plain").input_model is None and reg.get("plain").schema == ""
    assert reg.schemas() == [reg.get(name).schema for name in reg.names()]


def test_annotations_that_are_not_models_leave_the_task_plain():
    reg = TaskRegistry()

    @task("a", registry=reg)
    async def a(value: dict, ctx): ...

    @task("b", registry=reg)
    async def b(value: "NoSuchName", ctx): ...  # noqa: F821: does not resolve

    class Callable:
        async def __call__(self, value: SummarizeInput, ctx): ...

    reg.register("c", Callable())
    assert [reg.get(n).input_model for n in ("a", "b")] == [None, None]
    assert reg.get("c").input_model is SummarizeInput


def test_a_schema_past_the_bound_is_refused_at_registration():
    fields = {f"field_{i}_{'x' * 200}": (int, ...) for i in range(400)}
    from pydantic import create_model
    Huge = create_model("Huge", **fields)

    async def handler(value, ctx): ...

    handler.__annotations__["value"] = Huge
    with pytest.raises(ValueError, match="more than 65536"):
        TaskRegistry().register("huge", handler)


def test_as_plain_gives_the_fields_the_input_set():
    assert as_plain(SummarizeInput(text="x")) == {"text": "x"}
    assert as_plain(SummarizeInput(text="x", max_words=3)) == {"text": "x", "max_words": 3}
    assert as_plain({"text": 1}) == {"text": 1}


def test_ready_declares_the_schemas_and_the_handler_gets_a_model():
    reg = typed_registry()

    async def scenario():
        async with serving(reg) as (broker, _, ident, ready):
            assert ready.types == ["plain", "sync_typed", "typed"]
            assert ready.schemas == ["", reg.get("sync_typed").schema, reg.get("typed").schema]
            broker.send(ident, p.Job("j1", "typed", pack({"text": "hi", "max_words": 7}), 1, 30))
            _, result = await broker.expect(p.Result)
            assert unpack(result.result) == {"model": "SummarizeInput", "text": "hi", "max_words": 7}
            broker.send(ident, p.Job("j2", "sync_typed", pack({"text": "hi"}), 1, 30))
            _, result = await broker.expect(p.Result)
            assert unpack(result.result) is True
            broker.send(ident, p.Job("j3", "plain", pack([1, "two"]), 1, 30))
            _, result = await broker.expect(p.Result)
            assert unpack(result.result) == [1, "two"]

    run(scenario())


@pytest.mark.parametrize("value, error", [
    ({}, "invalid input for typed: at /text: Field required"),
    ({"text": "x", "max_words": "7"}, "invalid input for typed: at /max_words: Input should be a valid integer"),
    ({"text": 5, "max_words": 0}, "invalid input for typed: at /text: Input should be a valid string (and 1 more)"),
    ("text", "invalid input for typed: Input should be a valid dictionary or instance of SummarizeInput"),
])
def test_an_input_that_does_not_fit_fails_without_retry(value, error):
    async def scenario():
        async with serving(typed_registry()) as (broker, _, ident, _ready):
            broker.send(ident, p.Job("j", "typed", pack(value), 1, 30))
            _, failure = await broker.expect(p.Failure)
            assert failure.retryable is False
            assert failure.error.startswith(error)

    run(scenario())


def test_a_worker_refuses_schemas_past_the_ready_bound():
    reg = TaskRegistry()
    from pydantic import create_model
    for i in range(12):
        model = create_model(f"M{i}", **{f"f_{j}_{'y' * 150}": (int, ...) for j in range(110)})

        async def handler(value, ctx): ...

        handler.__annotations__["value"] = model
        reg.register(f"t{i}", handler)
    assert sum(len(s) for s in reg.schemas()) > p.MAX_READY_SCHEMA_BYTES
    with pytest.raises(ValueError, match="the broker would ignore them"):
        Worker(reg, WorkerConfig())
