"""Two apis behind HAProxy (the committed deploy/haproxy.cfg), each killed with SIGKILL in turn
while SSE clients follow slow jobs through the proxy: the clients (sluice.client's events(),
which reconnects with Last-Event-ID) end up on the other api and see every event once, in
order, to the terminal one. A WebSocket following all the jobs does the same with last_seq.
Submits made right after a kill succeed without a client retry."""
from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import websockets.sync.client
from sluice.client import Client, Event, RetryPolicy
from websockets.exceptions import ConnectionClosed, InvalidHandshake

# The native `sleep` sends 10 progress events, one every 2 s: time for both kills, each api's
# restart and HAProxy's checks to see it up (about 2 s) on a busy machine.
JOB_MS = 20_000
CLIENTS = 6
SUBMITS_AFTER_KILL = 20


class Follower:
    """One SSE client following one job through HAProxy in a thread of its own; keeps every
    event its events() iterator yields and the Last-Event-ID of each stream it opened."""

    def __init__(self, url: str, job_id: str):
        self.events: list[Event] = []
        self.opened_with: list[str | None] = []  # Last-Event-ID of each GET .../events
        self.error: BaseException | None = None
        http = httpx.Client(base_url=url, timeout=30, trust_env=False,
                            event_hooks={"request": [self._opened]})
        self.client = Client(http=http)
        self.thread = threading.Thread(target=self._run, args=(job_id,))
        self.thread.start()

    def _opened(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/events"):
            self.opened_with.append(request.headers.get("Last-Event-ID"))

    def _run(self, job_id: str) -> None:
        try:
            for event in self.client.events(job_id):
                self.events.append(event)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self) -> None:
        self.thread.join(JOB_MS / 1000 + 30)
        assert not self.thread.is_alive(), "follower hung"
        self.client.close()
        assert self.error is None, repr(self.error)


class WsFollower:
    """One WebSocket through HAProxy following every job in a thread of its own; when its
    connection breaks it opens another and subscribes again with each job's last_seq."""

    def __init__(self, url: str, job_ids: list[str]):
        self.url = url.replace("http://", "ws://") + "/v1/ws"
        self.events: dict[str, list[dict]] = {job_id: [] for job_id in job_ids}
        self.connections = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def count(self) -> int:
        return sum(len(events) for events in self.events.values())

    def _run(self) -> None:
        pending = set(self.events)
        deadline = time.monotonic() + JOB_MS / 1000 + 30
        try:
            while pending and time.monotonic() < deadline:
                try:
                    with websockets.sync.client.connect(self.url, proxy=None, open_timeout=10) as conn:
                        self.connections += 1
                        for job_id in pending:
                            resume = {"last_seq": self.events[job_id][-1]["seq"]} if self.events[job_id] else {}
                            conn.send(json.dumps({"op": "subscribe", "job_id": job_id, **resume}))
                        while pending:
                            message = json.loads(conn.recv(timeout=30))
                            if message["op"] == "event":
                                self.events[message["job_id"]].append(message)
                                if message["event"] == "succeeded":
                                    pending.discard(message["job_id"])
                except (ConnectionClosed, InvalidHandshake, OSError):
                    time.sleep(0.2)  # its api died: HAProxy takes the next one elsewhere
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self) -> None:
        self.thread.join(JOB_MS / 1000 + 40)
        assert not self.thread.is_alive(), "WebSocket follower hung"
        assert self.error is None, repr(self.error)


def wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_sse_clients_follow_their_jobs_across_api_kills(pipeline):
    p = pipeline
    p.env["SLUICE_API_TRUSTED_PROXIES"] = "127.0.0.1/32"  # HAProxy's address
    p.start()
    apis, urls = [p.api], [p.url]
    p.start_api()
    apis.append(p.api)
    urls.append(p.url)
    proxy = p.start_haproxy(urls)
    p.start_worker("native", concurrency=CLIENTS + 2, name="native-1")
    p.wait_workers("native-1")

    with Client(proxy) as client:
        jobs = [client.submit("sleep", {"ms": JOB_MS}).id for _ in range(CLIENTS)]
    followers = [Follower(proxy, job_id) for job_id in jobs]
    ws = WsFollower(proxy, jobs)
    echoes: list[str] = []
    try:
        wait_until(lambda: all(len(f.events) >= 2 for f in followers) and ws.count() >= 2 * CLIENTS,
                   "the streams did not start")
        for index in range(2):
            assert not any(f.events[-1].event == "succeeded" for f in followers), "a job ended before the kill"
            seen, ws_seen = [len(f.events) for f in followers], ws.count()
            apis[index].send_signal(signal.SIGKILL)
            apis[index].wait()
            # Right away, before any health check has run: HAProxy retries the refused connect
            # on the other api, so the client needs no retry of its own.
            with Client(proxy, retry_policy=RetryPolicy(max_retries=0)) as client:
                echoes += [client.submit("echo", {"kill": index, "n": n}).id for n in range(SUBMITS_AFTER_KILL)]
            p.start_api(SLUICE_API_PORT=urls[index].rsplit(":", 1)[1])
            apis[index] = p.api
            wait_until(lambda: f"Server apis/api-{index + 1} is UP" in p.haproxy_log(), "the api never came back")
            # Every stream has moved on since the kill: the next kill finds them all on the
            # other api (the one just restarted gets them all then).
            wait_until(lambda: all(len(f.events) > n for f, n in zip(followers, seen)) and ws.count() > ws_seen,
                       "a stream stalled")
    finally:
        for follower in followers:
            follower.join()
        ws.join()

    assert "Server apis/api-1 is DOWN" in p.haproxy_log() and "Server apis/api-2 is DOWN" in p.haproxy_log()
    with Client(proxy) as client:
        for job_id, follower in zip(jobs, followers):
            ids = [event.id for event in follower.events]
            assert ids == list(range(1, len(ids) + 1)), (job_id, ids)
            assert follower.events[-1].event == "succeeded", follower.events[-1]
            assert follower.events == list(client.events(job_id))
            # It lost its stream at least once (the second kill took every stream's api) and
            # resumed it from the last event it had.
            assert len(follower.opened_with) >= 2, follower.opened_with
            assert follower.opened_with[0] is None and all(follower.opened_with[1:]), follower.opened_with
            # The WebSocket too: every event once, in order, the SSE stream's data.
            assert [{k: v for k, v in m.items() if k != "op"} for m in ws.events[job_id]] == \
                [event.data for event in follower.events]
        assert ws.connections >= 2, ws.connections
        for job_id in echoes:
            assert client.wait(job_id, timeout=30).status == "succeeded"
