"""@task registration and the built-in tasks, called directly (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

import sluice
from sluice import tasks
from sluice.context import JobContext
from sluice.errors import NonRetryableError
from sluice.protocol import Job, Progress
from sluice.registry import TaskRegistry, registry, task


def test_decorator_forms():
    reg = TaskRegistry()

    @task(registry=reg)
    async def plain(value, ctx):
        return value

    @task("named.v2", registry=reg)
    def sync_one(value, ctx):
        return value

    @task(name="kw", registry=reg)
    async def by_keyword(value, ctx):
        return value

    assert reg.names() == ["kw", "named.v2", "plain"]
    assert reg.get("plain").fn is plain and reg.get("plain").is_async
    assert reg.get("named.v2").is_async is False
    assert sync_one(1, None) == 1  # the decorator returns the function unchanged
    assert reg.get("missing") is None


def test_duplicate_and_invalid_names_are_rejected():
    reg = TaskRegistry()

    @task("dup", registry=reg)
    async def first(value, ctx):
        return 1

    with pytest.raises(ValueError, match="already registered"):
        @task("dup", registry=reg)
        async def second(value, ctx):
            return 2

    reg.register("dup", first)  # the same function again (a module reload) is fine
    for bad in ["", "has space", "slash/no", "x" * 129]:
        with pytest.raises(ValueError):
            reg.register(bad, first)


def test_default_registry_holds_the_builtin_tasks():
    assert sluice.task is task and sluice.registry is registry
    assert {"echo", "sleep", "fail", "text_stats"} <= set(registry.names())


def _ctx(sent: list) -> JobContext:
    return JobContext(Job("j", "t", b"", 1, 0), "w", sent.append)


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_echo_returns_input():
    assert _run(tasks.echo({"a": [1, 2]}, _ctx([]))) == {"a": [1, 2]}


def test_sleep_progress_and_result():
    sent = []
    assert _run(tasks.sleep({"ms": 20}, _ctx(sent))) == {"slept_ms": 20}
    assert len(sent) == 10 and all(isinstance(m, Progress) for m in sent)
    assert sent[-1].fraction == 1.0


@pytest.mark.parametrize("bad", [None, 5, {}, {"ms": "10"}, {"ms": -1}, {"ms": True}, {"ms": 1.5}])
def test_sleep_rejects_bad_input(bad):
    with pytest.raises(NonRetryableError, match='sleep needs input {"ms": N}'):
        _run(tasks.sleep(bad, _ctx([])))


def test_fail():
    with pytest.raises(RuntimeError, match="failed on purpose"):
        _run(tasks.fail(None, _ctx([])))
    with pytest.raises(RuntimeError, match="custom"):
        _run(tasks.fail({"message": "custom"}, _ctx([])))
    with pytest.raises(NonRetryableError, match="final"):
        _run(tasks.fail({"message": "final", "retryable": False}, _ctx([])))
    with pytest.raises(NonRetryableError):
        _run(tasks.fail({"retryable": "no"}, _ctx([])))


@pytest.mark.parametrize("text, expected", [
    ("", {"words": 0, "characters": 0, "sentences": 0, "top_words": []}),
    ("Hello", {"words": 1, "characters": 5, "sentences": 1, "top_words": [["hello", 1]]}),
    ("It's a dog. It's a DOG!! Really?", {
        "words": 7, "characters": 32, "sentences": 3,
        "top_words": [["a", 2], ["dog", 2], ["it's", 2], ["really", 1]]}),
    ("Grüße aus Köln. Grüße!", {
        "words": 4, "characters": 22, "sentences": 2,
        "top_words": [["grüße", 2], ["aus", 1], ["köln", 1]]}),
    ("b a c d e f b", {"words": 7, "characters": 13, "sentences": 1,
                       "top_words": [["b", 2], ["a", 1], ["c", 1], ["d", 1], ["e", 1]]}),
])
def test_text_stats(text, expected):
    assert _run(tasks.text_stats({"text": text}, _ctx([]))) == expected


def test_text_stats_is_a_langchain_runnable():
    from langchain_core.runnables import Runnable

    assert isinstance(tasks.text_stats_chain, Runnable)
    assert tasks.text_stats_chain.invoke({"text": "a b a"})["top_words"] == [["a", 2], ["b", 1]]


@pytest.mark.parametrize("bad", [None, "text", {"text": 3}, {}])
def test_text_stats_rejects_bad_input(bad):
    with pytest.raises(NonRetryableError, match='text_stats needs input {"text": str}'):
        _run(tasks.text_stats(bad, _ctx([])))
