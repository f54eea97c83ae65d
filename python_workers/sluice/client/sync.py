"""`Client`: the Sluice HTTP API from synchronous Python, on httpx (see sluice/client/__init__.py)."""

from __future__ import annotations

import time
from typing import Any, Iterator, Mapping, TypeVar

import httpx

from . import core
from .core import Event, Job, RetryPolicy, TextStream
from .errors import ApiError

T = TypeVar("T")


class Client(core.ClientBase):
    """A client of one Sluice api.

    Args:
        url: the api's base URL; None: SLUICE_URL, else http://127.0.0.1:8080.
        api_key: an API key (`sk_...`), sent as `Authorization: Bearer`; None: SLUICE_API_KEY,
            else none (an api in the open development mode needs none).
        timeout: seconds to connect and for an answer to an ordinary request (a long-poll and an
            event stream get longer: see `wait` and `stream_read_timeout`).
        retry_policy: how 429 and 503 answers and failed connections are retried (RetryPolicy: 5
            retries, exponential backoff from 0.5 s, never sooner than the answer's Retry-After).
        stream_read_timeout: seconds an event stream may stay silent (the api sends a keep-alive
            every 15 s) before it is taken for dead and reconnected.
        http: an httpx.Client of your own (its base_url and headers are used as they are).

    Use it as a context manager, or call close(). Thread-safe as httpx.Client is.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 retry_policy: RetryPolicy | None = None, stream_read_timeout: float = 60.0,
                 http: httpx.Client | None = None) -> None:
        super().__init__(url, api_key, timeout, retry_policy, stream_read_timeout, http, httpx.Client)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def _send(self, send: core.Send, stream: bool = False) -> httpx.Response:
        return self._http.send(self._request(send), stream=stream)

    def _drive(self, plan: core.Plan[T]) -> T:
        """Runs a plan (core.py): makes its requests, sleeps its sleeps, returns its result."""
        try:
            action = next(plan)
            while True:
                if isinstance(action, core.Sleep):
                    time.sleep(action.seconds)
                    action = plan.send(None)
                    continue
                try:
                    response = self._send(action)
                except httpx.TransportError as exc:
                    action = plan.throw(exc)
                else:
                    action = plan.send(response)
        except StopIteration as stop:
            return stop.value

    # -- jobs --------------------------------------------------------------------------
    def submit(self, type: str, input: Any = None, *, idempotency_key: str | None = None, **options: Any) -> Job:
        """Submits a job of `type` with `input` (any JSON); `options` are the job's options as
        the api takes them (timeout_s, max_attempts, priority, concurrency_key, on_disconnect,
        ...). Returns the Job (status queued; `links` has read-token URLs for a browser).

        The request carries an Idempotency-Key (a new uuid4 unless `idempotency_key` is given),
        the same on every retry, so a submit retried after 503 `outcome_unknown` or a broken
        connection stores one job. Raises UnknownJobType, InvalidRequest, InputTooLarge, ...
        """
        return self._drive(core.submit(self.retry_policy, type, input, options, idempotency_key))

    def get(self, job_id: str) -> Job:
        """The job now: status, attempts, result or error, history. Raises JobNotFound."""
        return self._drive(core.get_job(self.retry_policy, job_id))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Waits for the job to end (long-polling /result?wait=) and returns it: `status` is
        succeeded (see `result`), failed (see `error`) or canceled. Raises WaitTimeout after
        `timeout` seconds (None: no limit) with the job still queued or running."""
        return self._drive(core.wait(self.retry_policy, job_id, timeout, self.timeout))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancels a queued or running job: `{"id", "status": "canceled"}`. Raises JobFinished
        for a job that has ended, JobNotFound."""
        return self._drive(core.cancel(self.retry_policy, job_id))

    def retry(self, job_id: str) -> dict[str, Any]:
        """Puts a dead (failed) job back in its queue with a fresh attempt budget:
        `{"id", "status": "queued"}`. Raises JobNotDead for any other job."""
        return self._drive(core.retry(self.retry_policy, job_id))

    def events(self, job_id: str, last_event_id: int | None = None) -> Iterator[Event]:
        """The job's events (`Event`: id, event, data) as they happen, from after
        `last_event_id` (None: from the first), ending after its terminal event.

        The SSE stream is parsed here. A connection that breaks, goes silent past
        `stream_read_timeout` or ends early is opened again with `Last-Event-ID` (after a
        backoff, or the stream's `retry:`), so no event is lost or repeated; after the retry
        policy's count of reconnects in a row that bring nothing new, the error is raised.
        """
        follower = core.EventFollower(job_id, last_event_id, self.retry_policy, self.stream_read_timeout)
        while not follower.done:
            try:
                response = self._send(follower.request(), stream=True)
                try:
                    follower.check(response)
                    for line in response.iter_lines():
                        event = follower.feed(line)
                        if event is not None:
                            yield event
                        if follower.done:
                            return
                finally:
                    response.close()
                if follower.new_in_connection == 0 and self.get(job_id).done:
                    return  # the job is over and the caller has its events (or they expired)
                error: BaseException = httpx.RemoteProtocolError("the stream ended before the job's last event")
            except (httpx.TransportError, ApiError) as exc:
                error = exc
            time.sleep(follower.reconnect_delay(error))

    def stream_text(self, job_id: str, last_event_id: int | None = None) -> TextStream:
        """The job's streamed output: iterate for each chunk's text as it arrives.

        Each chunk carries the attempt that sent it. When an attempt fails and the job is
        retried (a `retrying` event), the next attempt streams its text from the start: the
        superseded attempt's text is dropped, its late chunks too, and the next attempt's first
        chunk comes with `restart=True` (clear what you showed). After the loop, `.text` is the
        final attempt's whole text and `.final` the terminal event (`.final.data["result"]`).
        """
        return TextStream(self.events(job_id, last_event_id))

    def list_jobs(self, status: str | None = None, type: str | None = None, limit: int | None = None,
                  page_size: int = 100, **params: Any) -> Iterator[Job]:
        """The caller's jobs, newest first, fetched a page (`page_size`) at a time by cursor;
        at most `limit` of them (None: all). `status`, `type` and other query parameters
        (`tenant` for an admin) filter. Jobs come without `result` and `history`."""
        pager = core.Pager("/v1/jobs", {"status": status, "type": type, **params}, limit, page_size,
                           "next_cursor", "cursor")
        return self._pages(pager)

    def dead(self, limit: int | None = None, page_size: int = 100) -> Iterator[Job]:
        """Dead jobs (out of attempts, or failed for good), newest first; at most `limit`."""
        return self._pages(core.Pager("/v1/dead", {}, limit, page_size, "next_offset", "offset"))

    def _pages(self, pager: core.Pager) -> Iterator[Job]:
        while (send := pager.next_request()) is not None:
            yield from pager.take(self._drive(core.call(self.retry_policy, send, core.json_body, True)))

    # -- the system --------------------------------------------------------------------
    def queues(self, **params: Any) -> dict[str, Any]:
        """GET /v1/queues: `{"queues": [{"type", "workers", "queued", "scheduled", "running",
        ...}], "as_of", ...}`."""
        return self._drive(core.get_json(self.retry_policy, "/v1/queues", params))

    def workers(self) -> dict[str, Any]:
        """GET /v1/workers: `{"workers": [{"name", "runtime", "types", "concurrency", "running",
        "last_heartbeat", "leaving"}], "total", "as_of"}`."""
        return self._drive(core.get_json(self.retry_policy, "/v1/workers"))

    # -- cron schedules ----------------------------------------------------------------
    def create_schedule(self, cron: str, type: str, input: Any = None, *, timezone: str | None = None,
                        missed: str | None = None, **options: Any) -> dict[str, Any]:
        """Makes a cron schedule firing a job of `type` with `input` and `options` at each tick
        (README.md, Schedules): `{"id", "next_tick", "fired", ...}`. Raises InvalidCron,
        InvalidTimezone, TooManySchedules."""
        job = {"type": type, "input": input, **({"options": options} if options else {})}
        return self._drive(core.create_schedule(self.retry_policy, cron, job, timezone, missed))

    def list_schedules(self, limit: int = 100, offset: int = 0, **params: Any) -> list[dict[str, Any]]:
        """One page of the caller's schedules, oldest first (`tenant` for an admin)."""
        body = self._drive(core.get_json(self.retry_policy, "/v1/schedules", {"limit": limit, "offset": offset, **params}))
        return body["schedules"]

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        """One schedule. Raises ScheduleNotFound."""
        return self._drive(core.get_json(self.retry_policy, "/v1/schedules/" + core.quote(schedule_id)))

    def delete_schedule(self, schedule_id: str) -> dict[str, Any]:
        """Deletes a schedule: no tick fires after it. Raises ScheduleNotFound."""
        return self._drive(core.delete_schedule(self.retry_policy, schedule_id))

    # -- API keys (admin keys only) ----------------------------------------------------
    def create_key(self, tenant: str, role: str = "member", name: str = "", *,
                   rate_limit: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Makes an API key: `{"id", "key", "tenant", "role", "name", ...}`, `key` shown this once."""
        return self._drive(core.create_key(self.retry_policy, tenant, role, name or tenant, rate_limit))

    def list_keys(self) -> list[dict[str, Any]]:
        """Every API key, without secrets."""
        return self._drive(core.get_json(self.retry_policy, "/v1/admin/keys"))["keys"]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revokes a key (every api refuses it within a second). Raises KeyNotFound."""
        return self._drive(core.revoke_key(self.retry_policy, key_id))
