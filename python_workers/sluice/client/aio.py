"""`AsyncClient`: `Client` for asyncio (see sluice/client/__init__.py). Every method does what
the `Client` method of the same name does; they share their logic (core.py)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping, TypeVar

import httpx

from . import core
from .core import AsyncTextStream, Event, Job, RetryPolicy
from .errors import ApiError

T = TypeVar("T")


class AsyncClient(core.ClientBase):
    """An asyncio client of one Sluice api; the arguments are `Client`'s (`http` an
    httpx.AsyncClient). Use `async with`, or `await aclose()`."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 retry_policy: RetryPolicy | None = None, stream_read_timeout: float = 60.0,
                 http: httpx.AsyncClient | None = None) -> None:
        super().__init__(url, api_key, timeout, retry_policy, stream_read_timeout, http, httpx.AsyncClient)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def _send(self, send: core.Send, stream: bool = False) -> httpx.Response:
        return await self._http.send(self._request(send), stream=stream)

    async def _drive(self, plan: core.Plan[T]) -> T:
        """Runs a plan (core.py) on the event loop."""
        try:
            action = next(plan)
            while True:
                if isinstance(action, core.Sleep):
                    await asyncio.sleep(action.seconds)
                    action = plan.send(None)
                    continue
                try:
                    response = await self._send(action)
                except httpx.TransportError as exc:
                    action = plan.throw(exc)
                else:
                    action = plan.send(response)
        except StopIteration as stop:
            return stop.value

    async def submit(self, type: str, input: Any = None, *, idempotency_key: str | None = None,
                     **options: Any) -> Job:
        """`Client.submit`."""
        return await self._drive(core.submit(self.retry_policy, type, input, options, idempotency_key))

    async def get(self, job_id: str) -> Job:
        """`Client.get`."""
        return await self._drive(core.get_job(self.retry_policy, job_id))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """`Client.wait`."""
        return await self._drive(core.wait(self.retry_policy, job_id, timeout, self.timeout))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """`Client.cancel`."""
        return await self._drive(core.cancel(self.retry_policy, job_id))

    async def retry(self, job_id: str) -> dict[str, Any]:
        """`Client.retry`."""
        return await self._drive(core.retry(self.retry_policy, job_id))

    async def events(self, job_id: str, last_event_id: int | None = None) -> AsyncIterator[Event]:
        """`Client.events`: `async for event in client.events(id)`."""
        follower = core.EventFollower(job_id, last_event_id, self.retry_policy, self.stream_read_timeout)
        while not follower.done:
            try:
                response = await self._send(follower.request(), stream=True)
                try:
                    if response.status_code != 200:
                        await response.aread()
                    follower.check(response)
                    async for line in response.aiter_lines():
                        event = follower.feed(line)
                        if event is not None:
                            yield event
                        if follower.done:
                            return
                finally:
                    await response.aclose()
                if follower.new_in_connection == 0 and (await self.get(job_id)).done:
                    return  # the job is over and the caller has its events (or they expired)
                error: BaseException = httpx.RemoteProtocolError("the stream ended before the job's last event")
            except (httpx.TransportError, ApiError) as exc:
                error = exc
            await asyncio.sleep(follower.reconnect_delay(error))

    def stream_text(self, job_id: str, last_event_id: int | None = None) -> AsyncTextStream:
        """`Client.stream_text`: `async for text in client.stream_text(id)`."""
        return AsyncTextStream(self.events(job_id, last_event_id))

    async def list_jobs(self, status: str | None = None, type: str | None = None, limit: int | None = None,
                        page_size: int = 100, **params: Any) -> AsyncIterator[Job]:
        """`Client.list_jobs`: `async for job in client.list_jobs(...)`."""
        pager = core.Pager("/v1/jobs", {"status": status, "type": type, **params}, limit, page_size,
                           "next_cursor", "cursor")
        async for job in self._pages(pager):
            yield job

    async def dead(self, limit: int | None = None, page_size: int = 100) -> AsyncIterator[Job]:
        """`Client.dead`."""
        async for job in self._pages(core.Pager("/v1/dead", {}, limit, page_size, "next_offset", "offset")):
            yield job

    async def _pages(self, pager: core.Pager) -> AsyncIterator[Job]:
        while (send := pager.next_request()) is not None:
            for job in pager.take(await self._drive(core.call(self.retry_policy, send, core.json_body, True))):
                yield job

    async def queues(self, **params: Any) -> dict[str, Any]:
        """`Client.queues`."""
        return await self._drive(core.get_json(self.retry_policy, "/v1/queues", params))

    async def workers(self) -> dict[str, Any]:
        """`Client.workers`."""
        return await self._drive(core.get_json(self.retry_policy, "/v1/workers"))

    async def create_schedule(self, cron: str, type: str, input: Any = None, *, timezone: str | None = None,
                              missed: str | None = None, **options: Any) -> dict[str, Any]:
        """`Client.create_schedule`."""
        job = {"type": type, "input": input, **({"options": options} if options else {})}
        return await self._drive(core.create_schedule(self.retry_policy, cron, job, timezone, missed))

    async def list_schedules(self, limit: int = 100, offset: int = 0, **params: Any) -> list[dict[str, Any]]:
        """`Client.list_schedules`."""
        body = await self._drive(core.get_json(self.retry_policy, "/v1/schedules",
                                               {"limit": limit, "offset": offset, **params}))
        return body["schedules"]

    async def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        """`Client.get_schedule`."""
        return await self._drive(core.get_json(self.retry_policy, "/v1/schedules/" + core.quote(schedule_id)))

    async def delete_schedule(self, schedule_id: str) -> dict[str, Any]:
        """`Client.delete_schedule`."""
        return await self._drive(core.delete_schedule(self.retry_policy, schedule_id))

    async def create_key(self, tenant: str, role: str = "member", name: str = "", *,
                         rate_limit: Mapping[str, int] | None = None) -> dict[str, Any]:
        """`Client.create_key`."""
        return await self._drive(core.create_key(self.retry_policy, tenant, role, name or tenant, rate_limit))

    async def list_keys(self) -> list[dict[str, Any]]:
        """`Client.list_keys`."""
        return (await self._drive(core.get_json(self.retry_policy, "/v1/admin/keys")))["keys"]

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        """`Client.revoke_key`."""
        return await self._drive(core.revoke_key(self.retry_policy, key_id))
