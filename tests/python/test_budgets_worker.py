"""The Python worker's side of token budgets and provider 429s: READY declares each task's
model and token estimate (ModelUse), RESULT and FAILURE carry the tokens the attempt's model
calls used (through ctx.usage, which the AI tasks' UsageRecorder feeds), RateLimitedError is
sent as RATE_LIMITED; the `openai` provider's 429 and its headers map to RateLimitedError."""
from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import msgpack
import openai
import pytest
import zmq
import zmq.asyncio

from sluice import protocol as p
from sluice.context import record_usage
from sluice.errors import RateLimitedError
from sluice.models import DEFAULT_RETRY_AFTER, rate_limited_error, retry_after_of
from sluice.registry import ModelUse, TaskRegistry, task
from sluice.worker import Worker, WorkerConfig


def budget_registry() -> TaskRegistry:
    reg = TaskRegistry()

    @task("plain", registry=reg)
    async def plain(value, ctx):
        return value

    @task("chatty", registry=reg, model=ModelUse("gpt-test", chars_per_token=3, max_tokens=64))
    async def chatty(value, ctx):
        record_usage(10, 4)  # as UsageRecorder does for each model call, streamed ones included
        ctx.usage.add(1, 1)  # a handler's own count
        if value == "fail":
            raise ValueError("bad answer")
        if value == "429":
            raise RateLimitedError("slow down", retry_after=1.25)
        if value == "spawn":
            await ctx.spawn("plain", 1)  # a model call, then children: the SPAWN reports it
        return "ok"

    @task("configured", registry=reg, model=lambda: ModelUse("from-env", 4, 256))
    def configured(value, ctx):
        record_usage(2, 3)  # a sync handler: its thread sees the job's usage too
        return "ok"

    return reg


async def serving(reg: TaskRegistry):
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    worker = Worker(reg, WorkerConfig(broker=f"tcp://127.0.0.1:{port}", name="budget-worker"), context=ctx)
    running = asyncio.create_task(worker.run())
    return ctx, router, worker, running


async def expect(router, cls, timeout=10.0):
    while True:
        frames = await asyncio.wait_for(router.recv_multipart(), timeout)
        msg = p.decode(frames[1:])
        if isinstance(msg, cls):
            return frames[0], msg


def test_ready_declares_models_and_reports_usage_and_rate_limits():
    async def scenario():
        ctx, router, worker, running = await serving(budget_registry())
        try:
            ident, ready = await expect(router, p.Ready)
            assert ready.types == ["chatty", "configured", "plain"]
            assert ready.models == ["gpt-test", "from-env", ""]
            assert ready.chars_per_token == [3, 4, 0]
            assert ready.max_tokens == [64, 256, 0]

            def job(job_id, job_type, value):
                return p.encode(p.Job(job_id, job_type, msgpack.packb(value), 1, 30))

            await router.send_multipart([ident, *job("j1", "chatty", "hi")])
            _, result = await expect(router, p.Result)
            assert (result.job_id, result.prompt_tokens, result.completion_tokens) == ("j1", 11, 5)
            await router.send_multipart([ident, *job("j2", "chatty", "fail")])
            _, failure = await expect(router, p.Failure)
            assert (failure.job_id, failure.prompt_tokens, failure.completion_tokens, failure.retryable) == \
                ("j2", 11, 5, True)
            await router.send_multipart([ident, *job("j3", "chatty", "429")])
            _, limited = await expect(router, p.RateLimited)
            assert (limited.job_id, limited.attempt, limited.retry_after_ms) == ("j3", 1, 1250)
            assert "slow down" in limited.error
            await router.send_multipart([ident, *job("j6", "chatty", "spawn")])
            _, spawn = await expect(router, p.Spawn)
            assert (spawn.job_id, spawn.types, spawn.prompt_tokens, spawn.completion_tokens) == \
                ("j6", ["plain"], 11, 5)
            await router.send_multipart([ident, *job("j4", "configured", None)])
            _, result = await expect(router, p.Result)
            assert (result.prompt_tokens, result.completion_tokens) == (2, 3)
            await router.send_multipart([ident, *job("j5", "plain", None)])
            _, result = await expect(router, p.Result)
            assert (result.prompt_tokens, result.completion_tokens) == (0, 0)
        finally:
            worker.stop()
            worker.stop()
            await asyncio.wait_for(running, 5)
            ctx.destroy(linger=0)

    asyncio.run(scenario())


def test_a_registry_without_models_declares_none():
    reg = TaskRegistry()
    task("echo", registry=reg)(lambda value, ctx: value)
    assert reg.models() == ([], [], [])


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after": "-3"}, 0.0),
    ({"x-ratelimit-reset-requests": "1m2.5s", "x-ratelimit-reset-tokens": "20ms"}, 62.5),
    ({"x-ratelimit-reset-tokens": "6m0s"}, 360.0),
    ({"x-ratelimit-reset-tokens": "soon"}, DEFAULT_RETRY_AFTER),
    ({"retry-after": "tomorrow"}, DEFAULT_RETRY_AFTER),
    ({}, DEFAULT_RETRY_AFTER),
    (None, DEFAULT_RETRY_AFTER),
])
def test_retry_after_is_read_from_the_429s_headers(headers, seconds):
    assert retry_after_of(headers) == pytest.approx(seconds)


def test_retry_after_as_an_http_date():
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retry_after_of({"retry-after": date}, now) <= 31


def test_openais_rate_limit_error_maps_to_rate_limited_error_through_its_causes():
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(429, headers={"Retry-After": "7"}, request=request,
                              json={"error": {"message": "Rate limit reached"}})
    error = openai.RateLimitError("Rate limit reached", response=response, body=None)
    mapped = rate_limited_error(error)
    assert isinstance(mapped, RateLimitedError) and mapped.retry_after == 7.0
    try:
        try:
            raise error
        except openai.RateLimitError as exc:
            raise RuntimeError("chain failed") from exc
    except RuntimeError as outer:
        assert rate_limited_error(outer).retry_after == 7.0
    server_error = openai.InternalServerError("boom", response=httpx.Response(500, request=request), body=None)
    assert rate_limited_error(server_error) is None
    assert rate_limited_error(ValueError("x")) is None
