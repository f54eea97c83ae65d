"""The part of the client that does no I/O, shared by `Client` and `AsyncClient`.

Each API call is a *plan*: a generator that yields `Send` (an HTTP request to make) and `Sleep`
(a pause before a retry) actions and receives the response (or has the transport error thrown
in); its return value is the call's result. The sync and async clients only drive plans, so the
retry rules, the error mapping and the parsing are written once. The SSE parser, the event
follower (Last-Event-ID bookkeeping across reconnects) and the text assembler (chunks of the
newest attempt) are plain objects fed with lines and events.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping, Sequence, TypeVar

import httpx

from .errors import ApiError, TransportError, WaitTimeout, error_from_body

T = TypeVar("T")

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
DEFAULT_URL = "http://127.0.0.1:8080"
# The api's longest long-poll (GET /v1/jobs/{id}/result?wait=, 0..60 s).
MAX_WAIT_S = 60


@dataclass
class Job:
    """A job as the api describes it (README.md, HTTP API). Members the api did not send are
    None (a listing leaves out `result` and `history`; a submit's answer has only `id`, `type`,
    `status` and `links`); `raw` is the whole JSON body, members this client does not name
    included."""

    id: str
    type: str
    status: str
    tenant: str | None = None
    key_id: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout_s: int | None = None
    attempts: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: Any = None
    error: str | None = None
    redeliveries: int | None = None
    history: list[dict[str, Any]] | None = None
    links: dict[str, str] | None = None
    joined: str | None = None  # options.dedupe: the job this one joined, which runs for both
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Job":
        """A Job from the api's JSON body of a job."""
        names = {f.name for f in dataclasses.fields(cls)} - {"raw"}
        return cls(**{k: v for k, v in body.items() if k in names}, raw=dict(body))

    @property
    def done(self) -> bool:
        """True once the job is succeeded, failed or canceled."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: `id` is its per-job sequence number (the SSE `id:`), `event`
    its name (queued, started, progress, chunk, retrying, succeeded, failed, canceled), `data`
    the parsed JSON payload (`attempt`, `fraction`, `message`, `data`, `result`, `error`, ...)."""

    id: int
    event: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        """True for the job's last event (succeeded, failed, canceled)."""
        return self.event in TERMINAL


@dataclass
class RetryPolicy:
    """How 429 and 503 answers (and connections that fail) are retried.

    Attempt n (0-based) waits `backoff_s * 2**n`, capped at `max_backoff_s`, with up to 25%
    jitter, or the answer's `Retry-After` when that is longer; after `max_retries` retries the
    error is raised. `max_retries=0` turns retries off.
    """

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None: give up."""
        if retry >= self.max_retries:
            return None
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** retry)
        backoff *= 1 + random.uniform(-0.25, 0.25)
        return max(backoff, retry_after or 0.0)


class ClientBase:
    """What `Client` and `AsyncClient` share: their settings and their httpx client, and how a
    plan's `Send` becomes an httpx request."""

    def __init__(self, url: str | None, api_key: str | None, timeout: float, retry_policy: RetryPolicy | None,
                 stream_read_timeout: float, http: Any, http_class: type) -> None:
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self.stream_read_timeout = stream_read_timeout
        self._http = http or http_class(base_url=base_url(url), headers=auth_headers(api_key), timeout=timeout,
                                        trust_env=False)

    def _request(self, send: "Send") -> httpx.Request:
        return self._http.build_request(send.method, send.path, params=send.params, json=send.json,
                                        headers=send.headers, timeout=timeout_for(send, self.timeout))


# -- plans -------------------------------------------------------------------------------
@dataclass
class Send:
    """Action: make this request. `timeout` is None for the client's default."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    timeout: float | None = None


@dataclass
class Sleep:
    """Action: wait this many seconds (before a retry)."""

    seconds: float


Plan = Generator["Send | Sleep", Any, T]

RETRYABLE_STATUS = frozenset({429, 503})


def base_url(url: str | None) -> str:
    """The api's URL: `url`, else SLUICE_URL, else http://127.0.0.1:8080."""
    return url or os.environ.get("SLUICE_URL") or DEFAULT_URL


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The headers that carry the API key `api_key`, else SLUICE_API_KEY (none without one)."""
    api_key = api_key or os.environ.get("SLUICE_API_KEY")
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def timeout_for(send: Send, default: float) -> httpx.Timeout:
    """The httpx timeout of a request: `default` to connect, write and (unless the request
    asks for longer, as a long-poll and an event stream do) read."""
    return httpx.Timeout(default, read=send.timeout or default)


def retry_after(response: httpx.Response) -> float | None:
    """The response's Retry-After in seconds (the delta-seconds form the api sends), or None."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def raise_for_error(response: httpx.Response) -> None:
    """Raises the ApiError of an error answer (status 400 and up); returns for any other."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = response.text
    raise error_from_body(response.status_code, body, retry_after(response))


def call(policy: RetryPolicy, send: Send, parse: Callable[[httpx.Response], T],
         resend_after_break: bool = False) -> Plan[T]:
    """A plan that makes `send` and returns `parse(response)`. 429 and 503 answers are retried
    as `policy` says; so is a connection that could not be made (nothing was sent) and, with
    `resend_after_break` (a request that is safe to send twice), one that broke mid-way."""
    retry = 0
    while True:
        try:
            response = yield send
        except httpx.TransportError as exc:
            safe = resend_after_break or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            delay = policy.delay(retry) if safe else None
            if delay is None:
                raise TransportError(f"{send.method} {send.path}: {exc!r}", exc) from exc
        else:
            if response.status_code not in RETRYABLE_STATUS:
                raise_for_error(response)
                return parse(response)
            delay = policy.delay(retry, retry_after(response))
            if delay is None:
                raise_for_error(response)
        retry += 1
        yield Sleep(delay)


def json_body(response: httpx.Response) -> Any:
    return response.json()


def _job(response: httpx.Response) -> Job:
    return Job.from_json(response.json())


def job_path(job_id: str) -> str:
    """`/v1/jobs/{id}`, the id escaped (an id is a UUID; anything else is 404 anyway)."""
    return "/v1/jobs/" + urllib.parse.quote(job_id, safe="")


def submit(policy: RetryPolicy, job_type: str, input: Any, options: Mapping[str, Any],
           idempotency_key: str | None) -> Plan[Job]:
    """POST /v1/jobs with an Idempotency-Key (a new uuid4 unless given), the same on every retry,
    so a submit retried after a 503 `outcome_unknown` or a broken connection makes one job."""
    body: dict[str, Any] = {"type": job_type, "input": input}
    if options:
        body["options"] = dict(options)
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    return call(policy, Send("POST", "/v1/jobs", json=body, headers=headers), _job, resend_after_break=True)


def submit_flow(policy: RetryPolicy, parent: Mapping[str, Any], children: Sequence[Mapping[str, Any]],
                idempotency_key: str | None) -> Plan[Job]:
    """POST /v1/flows with an Idempotency-Key as submit() sends one: the parent Job (status
    waiting_children); `raw["children"]` lists the children's ids, types and on_failure."""
    body = {"parent": dict(parent), "children": [dict(child) for child in children]}
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    return call(policy, Send("POST", "/v1/flows", json=body, headers=headers), _job, resend_after_break=True)


def get_job(policy: RetryPolicy, job_id: str) -> Plan[Job]:
    """GET /v1/jobs/{id}."""
    return call(policy, Send("GET", job_path(job_id)), _job, resend_after_break=True)


def poll_result(policy: RetryPolicy, job_id: str, wait_s: int, http_timeout: float) -> Plan[Job]:
    """GET /v1/jobs/{id}/result?wait=S once: the job, terminal (200) or not yet (202)."""
    send = Send("GET", job_path(job_id) + "/result", params={"wait": wait_s}, timeout=wait_s + http_timeout)
    return call(policy, send, _job, resend_after_break=True)


def cancel(policy: RetryPolicy, job_id: str) -> Plan[dict[str, Any]]:
    """DELETE /v1/jobs/{id}: `{"id", "status": "canceled"}`."""
    return call(policy, Send("DELETE", job_path(job_id)), json_body)


def retry(policy: RetryPolicy, job_id: str) -> Plan[dict[str, Any]]:
    """POST /v1/jobs/{id}/retry: `{"id", "status": "queued"}`."""
    return call(policy, Send("POST", job_path(job_id) + "/retry"), json_body)


def get_json(policy: RetryPolicy, path: str, params: dict[str, Any] | None = None) -> Plan[Any]:
    """GET `path` (a read: safe to resend), its JSON body."""
    return call(policy, Send("GET", path, params=params), json_body, resend_after_break=True)


def create_key(policy: RetryPolicy, tenant: str, role: str, name: str,
               rate_limit: Mapping[str, int] | None) -> Plan[dict[str, Any]]:
    """POST /v1/admin/keys: the new key, its secret shown this once."""
    body: dict[str, Any] = {"tenant": tenant, "role": role, "name": name}
    if rate_limit:
        body["rate_limit"] = dict(rate_limit)
    return call(policy, Send("POST", "/v1/admin/keys", json=body), json_body)


def revoke_key(policy: RetryPolicy, key_id: str) -> Plan[dict[str, Any]]:
    """DELETE /v1/admin/keys/{id}."""
    return call(policy, Send("DELETE", "/v1/admin/keys/" + urllib.parse.quote(key_id, safe="")), json_body)


def create_schedule(policy: RetryPolicy, cron: str, job: Mapping[str, Any], timezone: str | None,
                    missed: str | None) -> Plan[dict[str, Any]]:
    """POST /v1/schedules: the new schedule (`id`, `next_tick`, ...). Not resent after a broken
    connection: a second one would fire every tick twice."""
    body: dict[str, Any] = {"cron": cron, "job": dict(job)}
    if timezone is not None:
        body["timezone"] = timezone
    if missed is not None:
        body["missed"] = missed
    return call(policy, Send("POST", "/v1/schedules", json=body), json_body)


def quote(segment: str) -> str:
    """`segment` as one path segment."""
    return urllib.parse.quote(segment, safe="")


def delete_schedule(policy: RetryPolicy, schedule_id: str) -> Plan[dict[str, Any]]:
    """DELETE /v1/schedules/{id}."""
    return call(policy, Send("DELETE", "/v1/schedules/" + quote(schedule_id)), json_body)


def wait(policy: RetryPolicy, job_id: str, timeout: float | None, http_timeout: float) -> Plan[Job]:
    """Long-polls GET /v1/jobs/{id}/result?wait= (up to 60 s a request) until the job ends;
    returns it in its terminal state. Raises WaitTimeout once `timeout` seconds have passed
    (rounded up to a whole second) with the job still queued or running; None waits forever."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = MAX_WAIT_S if deadline is None else deadline - time.monotonic()
        wait_s = max(0, min(MAX_WAIT_S, math.ceil(left)))
        job = yield from poll_result(policy, job_id, wait_s, http_timeout)
        if job.done:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"job {job_id} is still {job.status} after {timeout} s", job)


class Pager:
    """The pages of a listing (GET /v1/jobs by `next_cursor`, GET /v1/dead by `next_offset`):
    `next_request()` gives the next page's request (None: no more), `take(body)` its jobs, at
    most `limit` in all (None: every one)."""

    def __init__(self, path: str, params: Mapping[str, Any], limit: int | None, page_size: int,
                 next_field: str, next_param: str) -> None:
        self.path, self.limit, self.page_size = path, limit, page_size
        self.params = {k: v for k, v in params.items() if v is not None}
        self.next_field, self.next_param = next_field, next_param
        self.taken = 0
        self._next: Any = None
        self._more = limit is None or limit > 0

    def next_request(self) -> Send | None:
        """The request of the next page, or None when the listing is done."""
        if not self._more:
            return None
        size = self.page_size if self.limit is None else min(self.page_size, self.limit - self.taken)
        params = {**self.params, "limit": size}
        if self._next is not None:
            params[self.next_param] = self._next
        return Send("GET", self.path, params=params)

    def take(self, body: Mapping[str, Any]) -> list[Job]:
        """The jobs of one page's body (up to the limit); notes where the next page starts."""
        jobs = [Job.from_json(j) for j in body.get("jobs", [])]
        if self.limit is not None:
            jobs = jobs[:self.limit - self.taken]
        self.taken += len(jobs)
        self._next = body.get(self.next_field)
        self._more = self._next is not None and (self.limit is None or self.taken < self.limit)
        return jobs


# -- Server-Sent Events ------------------------------------------------------------------
class SseParser:
    """An SSE parser (the WHATWG "event stream interpretation"): feed it the stream's lines,
    without their line ends, and it returns each event as it completes."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> Event | None:
        """Takes one line; returns the event a blank line completes, else None."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, event, event_id = self._data, self._event or "message", self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        payload = json.loads("\n".join(data))
        seq = int(event_id) if event_id and event_id.isdigit() else int(payload.get("seq", 0))
        return Event(seq, payload.get("event", event), payload)


class EventFollower:
    """Follows one job's event stream across connections: the Last-Event-ID to send, the events
    new to the caller (one already seen after a reconnect is dropped), whether the stream is done
    (its terminal event came), and how long to wait before reconnecting.

    A connection that breaks, or ends without the terminal event, is reconnected with
    Last-Event-ID after a backoff (`policy`: the count of reconnects in a row without a new
    event is bounded, any new event resets it). A stream that ends cleanly with nothing new
    ends the iteration once the job turns out to be over (the caller checks its status).
    """

    def __init__(self, job_id: str, last_event_id: int | None, policy: RetryPolicy, read_timeout: float) -> None:
        self.job_id = job_id
        self.last_id = last_event_id
        self.policy = policy
        self.read_timeout = read_timeout
        self.done = False
        self._parser = SseParser()
        self._quiet_reconnects = 0
        self.new_in_connection = 0

    def request(self) -> Send:
        """The request for the next connection: with Last-Event-ID once an event was seen."""
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        self._parser = SseParser()
        self.new_in_connection = 0
        return Send("GET", job_path(self.job_id) + "/events", headers=headers, timeout=self.read_timeout)

    def check(self, response: httpx.Response) -> None:
        """Raises the ApiError of a stream that did not open (its body read: a short error)."""
        if response.status_code != 200 and not response.is_stream_consumed:
            response.read()
        raise_for_error(response)
        if response.status_code != 200:
            raise ApiError(response.status_code, f"http_{response.status_code}", "the event stream did not open")

    def feed(self, line: str) -> Event | None:
        """Takes one line of the stream; returns the event it completes if it is new."""
        event = self._parser.feed(line)
        if event is None or (self.last_id is not None and event.id <= self.last_id):
            return None
        self.last_id = event.id
        self.new_in_connection += 1
        self._quiet_reconnects = 0
        self.done = event.terminal
        return event

    def reconnect_delay(self, error: BaseException) -> float:
        """After a connection broke (or ended early) with `error`: the seconds to wait before
        the next one. Raises `error` (as a TransportError for a transport failure) once too
        many reconnects in a row brought nothing new."""
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        if isinstance(error, ApiError) and error.status not in RETRYABLE_STATUS:
            raise error
        delay = self.policy.delay(self._quiet_reconnects, retry_after)
        if delay is None:
            if isinstance(error, httpx.TransportError):
                raise TransportError(f"event stream of {self.job_id}: {error!r}", error) from error
            raise error
        self._quiet_reconnects += 1
        if self._parser.retry_ms is not None and self._quiet_reconnects == 1:
            delay = self._parser.retry_ms / 1000
        return delay


class TextChunk(str):
    """One streamed chunk's text (a `str`), with the `attempt` that sent it and `restart`: True
    on the first chunk after an attempt was superseded, when the text so far must be thrown away
    (a chat UI clears what it showed; `TextStream.text` already has)."""

    attempt: int
    restart: bool

    def __new__(cls, text: str, attempt: int, restart: bool) -> "TextChunk":
        chunk = super().__new__(cls, text)
        chunk.attempt, chunk.restart = attempt, restart
        return chunk


class TextAssembler:
    """The streamed text of a job, from its events.

    Every chunk and progress event carries the `attempt` that sent it. When an attempt fails
    and the job is retried, a `retrying` event (with the failed attempt) comes, and the next
    attempt streams its text from the start: the assembler then drops the text it had, drops any
    chunk of that attempt or an older one, and marks the next attempt's first chunk `restart`.
    So the text is never a mix of two attempts.
    """

    def __init__(self) -> None:
        self.attempt = 0      # the attempt whose chunks make the text
        self.superseded = 0   # attempts up to this one failed: their chunks are dropped
        self.parts: list[str] = []
        self._restart = False
        self.final: Event | None = None

    def feed(self, event: Event) -> TextChunk | None:
        """Takes one event; returns the chunk to show (None: nothing to show)."""
        attempt = int(event.data.get("attempt") or self.attempt)
        if event.terminal:
            self.final = event
        if event.event == "retrying":
            self.superseded = max(self.superseded, attempt)
            self._restart = self._restart or bool(self.parts)
            self.parts = []
            return None
        if event.event != "chunk" or attempt <= self.superseded or attempt < self.attempt:
            return None
        if attempt > self.attempt:
            self._restart = self._restart or bool(self.parts)
            self.parts, self.attempt = [], attempt
        chunk = TextChunk(str(event.data.get("data", "")), attempt, self._restart)
        self._restart = False
        self.parts.append(chunk)
        return chunk

    @property
    def text(self) -> str:
        """The newest attempt's text so far."""
        return "".join(self.parts)


class TextStream(TextAssembler):
    """What `Client.stream_text()` returns: iterate it for the chunks (`TextChunk`s) as they
    arrive; afterwards `text` is the whole text of the attempt that ended the job and `final`
    its terminal event (`final.event` is succeeded, failed or canceled; `final.data["result"]`
    the result)."""

    def __init__(self, events: Iterable[Event]) -> None:
        super().__init__()
        self._events = events

    def __iter__(self) -> Iterator[TextChunk]:
        for event in self._events:
            chunk = self.feed(event)
            if chunk is not None:
                yield chunk


class AsyncTextStream(TextAssembler):
    """`TextStream` for `AsyncClient.stream_text()`: `async for chunk in stream`."""

    def __init__(self, events: AsyncIterable[Event]) -> None:
        super().__init__()
        self._events = events

    async def __aiter__(self) -> AsyncIterator[TextChunk]:
        async for event in self._events:
            chunk = self.feed(event)
            if chunk is not None:
                yield chunk
