"""sluice-webhooks: the deliverer of job webhooks (README.md, "Webhooks").

The broker's scripts add one entry to the Redis stream `sluice:webhooks` per lifecycle event and
target (a job's own `options.webhook`, or a default endpoint of its tenant). Deliverers read it
as one consumer group, so any number run side by side and each entry goes to one of them:

  1. read new entries (XREADGROUP); take over entries another deliverer read and never
     acknowledged because it died (XAUTOCLAIM, once they have been idle `claim_idle_ms`);
  2. post each one, signed as the Standard Webhooks spec says, and record the attempt in the
     job's list `sluice:webhook_attempts:{id}` (what GET /v1/jobs/{id}/webhooks shows);
  3. acknowledge and delete the entry once it is delivered, given up, or put in the retry zset
     `sluice:webhook_retries` (in one MULTI with the XACK); take due retries from that zset with
     a lease (a claimed retry is pushed `claim_idle_ms` ahead, so one whose deliverer dies comes
     due again). Delivery is at least once: a receiver dedupes by the `webhook-id` header.

A slow receiver delays nobody else: each request has a timeout, at most `per_host` requests go
to one host at once and at most `concurrency` overall, and a response body is read up to
RESPONSE_PEEK_BYTES only. Every address a host name resolves to is checked against the refused
networks (common/webhooks.cpp keeps the same list) and the connection goes to an address that
passed, so a name that resolves to a private address at delivery time is refused (no DNS
rebinding gap). Redirects are not followed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import random
import secrets
import signal
import socket
import time
from datetime import datetime, timezone
from typing import Any

import aiohttp
import msgpack
import redis.asyncio as aioredis
import redis.asyncio.sentinel
import redis.exceptions
from aiohttp.abc import AbstractResolver
from yarl import URL

from .errors import SluiceError

log = logging.getLogger("sluice.webhooks")

# Redis names, as common/keys.hpp names them.
STREAM = "sluice:webhooks"
GROUP = "deliverers"
RETRIES = "sluice:webhook_retries"
ATTEMPTS_PREFIX = "sluice:webhook_attempts:"
ENDPOINTS_PREFIX = "sluice:webhook_endpoints:"
SECRET_PREFIX = "sluice:webhook_secret:"
JOB_PREFIX = "sluice:job:"
HISTORY_PREFIX = "sluice:history:"

# What a payload shows of a job's hash (not its input, which may be 512 KiB).
JOB_FIELDS = ("id", "type", "tenant", "key_id", "status", "priority", "max_attempts", "timeout_s", "attempts",
              "created_ms", "started_ms", "finished_ms", "error", "redeliveries", "result")
# Attempts kept per job (the oldest go first): a day of retries to one target is about 20.
MAX_ATTEMPTS_KEPT = 100
# A receiver's answer is read this far, for the attempt record; the rest is never read.
RESPONSE_PEEK_BYTES = 1024
# Stream entries read at once, and the most this process holds read but not yet finished.
READ_BATCH = 100
MAX_PENDING = 1000
# Error text kept in an attempt record.
MAX_ERROR_CHARS = 300

# Claims due retries: each is pushed ARGV[2] ms ahead (its lease) before it is handed out, so two
# deliverers never take the same one, and a deliverer that dies holding it loses it to the others.
# KEYS: the retry zset. ARGV: now_ms, lease_ms, count. Returns the claimed members.
CLAIM_RETRIES = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), member) end
return due
"""

# Networks a webhook may not reach unless SLUICE_WEBHOOK_ALLOW_NETS lists them: loopback, private,
# link-local, shared (CGNAT), multicast, documentation, reserved (as common/webhooks.cpp).
REFUSED_NETS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "::/96", "64:ff9b:1::/48", "100::/64", "2001::/32",
    "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8")]
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookError(SluiceError):
    """Root of the deliverer's own errors."""


class TargetRefused(WebhookError):
    """A webhook's host is, or resolves only to, an address it may not reach."""


@dataclasses.dataclass
class Config:
    """Every knob of sluice-webhooks, with its default; from_env() reads the variables named."""

    redis_host: str = "127.0.0.1"            # SLUICE_REDIS_HOST
    redis_port: int = 6399                   # SLUICE_REDIS_PORT
    redis_user: str = "sluice"               # SLUICE_REDIS_USER
    redis_password: str = ""                 # SLUICE_REDIS_PASSWORD_FILE (the file's contents)
    # Redis Sentinels to ask where the master is, (host, port) each (README.md, Redis failover);
    # set, they replace redis_host and redis_port. The same login is sent to them.
    redis_sentinels: list = dataclasses.field(default_factory=list)  # SLUICE_REDIS_SENTINELS
    redis_master_name: str = "sluice"        # SLUICE_REDIS_MASTER_NAME
    # One request's whole time (connect, send, answer); past it the attempt failed.
    timeout_ms: int = 10_000                 # SLUICE_WEBHOOK_TIMEOUT_MS
    # Requests in flight at once, and to one host at once.
    concurrency: int = 64                    # SLUICE_WEBHOOK_CONCURRENCY
    per_host: int = 8                        # SLUICE_WEBHOOK_PER_HOST
    # A delivery is retried until this long after its event; then it is given up (`failed`).
    max_age_s: int = 86_400                  # SLUICE_WEBHOOK_MAX_AGE_S
    # Retry n waits retry_base_ms * 2^(n-1), at most retry_max_ms, +-25% jitter: 5 s, 10 s, ...
    # then every hour, about 30 attempts in the day.
    retry_base_ms: int = 5_000               # SLUICE_WEBHOOK_RETRY_BASE_MS
    retry_max_ms: int = 3_600_000            # SLUICE_WEBHOOK_RETRY_MAX_MS
    # A delivery read by a deliverer that has not finished it in this long is taken over by
    # another (its deliverer died); also the lease of a claimed retry. Above timeout_ms.
    claim_idle_ms: int = 60_000              # SLUICE_WEBHOOK_CLAIM_IDLE_MS
    # Largest request body; past it the job's result, then its history, are left out.
    max_body_bytes: int = 64 * 1024          # SLUICE_WEBHOOK_MAX_BODY_BYTES
    # Networks a webhook may reach although they are loopback, private or link-local.
    allow_nets: list = dataclasses.field(default_factory=list)  # SLUICE_WEBHOOK_ALLOW_NETS
    # How long attempt records live when their job has no expiry yet (the broker's job TTL).
    job_ttl_s: int = 7 * 24 * 3600           # SLUICE_JOB_TTL_S
    # This deliverer's name in the consumer group.
    name: str = dataclasses.field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")  # SLUICE_WEBHOOK_NAME

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Config":
        """Reads the environment; raises ValueError naming a variable that does not parse."""
        env = os.environ if env is None else env
        c = cls()

        def integer(name: str, default: int, low: int, high: int) -> int:
            text = env.get(name, "")
            if not text:
                return default
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"{name} must be an integer, not {text!r}") from None
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high}, not {value}")
            return value

        c.redis_host = env.get("SLUICE_REDIS_HOST") or c.redis_host
        c.redis_port = integer("SLUICE_REDIS_PORT", c.redis_port, 1, 65535)
        c.redis_user = env.get("SLUICE_REDIS_USER") or c.redis_user
        c.redis_sentinels = parse_sentinels(env.get("SLUICE_REDIS_SENTINELS", ""))
        c.redis_master_name = env.get("SLUICE_REDIS_MASTER_NAME") or c.redis_master_name
        if env.get("SLUICE_REDIS_PASSWORD_FILE"):
            with open(env["SLUICE_REDIS_PASSWORD_FILE"], encoding="utf-8") as f:
                c.redis_password = f.read().strip()
        c.timeout_ms = integer("SLUICE_WEBHOOK_TIMEOUT_MS", c.timeout_ms, 100, 300_000)
        c.concurrency = integer("SLUICE_WEBHOOK_CONCURRENCY", c.concurrency, 1, 10_000)
        c.per_host = integer("SLUICE_WEBHOOK_PER_HOST", c.per_host, 1, 10_000)
        c.max_age_s = integer("SLUICE_WEBHOOK_MAX_AGE_S", c.max_age_s, 1, 30 * 86_400)
        c.retry_base_ms = integer("SLUICE_WEBHOOK_RETRY_BASE_MS", c.retry_base_ms, 10, 86_400_000)
        c.retry_max_ms = integer("SLUICE_WEBHOOK_RETRY_MAX_MS", c.retry_max_ms, 10, 86_400_000)
        c.claim_idle_ms = integer("SLUICE_WEBHOOK_CLAIM_IDLE_MS", c.claim_idle_ms, c.timeout_ms + 1000, 86_400_000)
        c.max_body_bytes = integer("SLUICE_WEBHOOK_MAX_BODY_BYTES", c.max_body_bytes, 8192, 16 * 1024 * 1024)
        c.job_ttl_s = integer("SLUICE_JOB_TTL_S", c.job_ttl_s, 1, 10 * 365 * 86_400)
        c.name = env.get("SLUICE_WEBHOOK_NAME") or c.name
        c.allow_nets = parse_nets(env.get("SLUICE_WEBHOOK_ALLOW_NETS", ""))
        return c


def parse_nets(text: str) -> list:
    """A comma-separated CIDR list; raises ValueError naming an item that is not a network."""
    nets = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"SLUICE_WEBHOOK_ALLOW_NETS holds {item!r}, which is not a network in CIDR form") from None
    return nets


# -- Signing (Standard Webhooks) -------------------------------------------------------------

def secret_key(secret: str) -> bytes:
    """The HMAC key of a "whsec_<base64>" secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: "v1," and the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: Any, body: bytes, tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a receiver does: True when one of the space-separated v1 signatures in the headers
    matches and webhook-timestamp is within `tolerance_s` of `now` (replays are refused)."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, given) for given in headers.get("webhook-signature", "").split())


def make_secret() -> str:
    """A fresh secret: "whsec_" and the base64 of 32 random bytes (as the api makes them)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# -- Targets -----------------------------------------------------------------------------------

def refused(address: str, allowed: list) -> bool:
    """True when `address` is in a refused network and in none of `allowed`."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(ip.packed[12:])
    if any(ip.version == net.version and ip in net for net in allowed):
        return False
    return any(ip.version == net.version and ip in net for net in REFUSED_NETS)


class GuardedResolver(AbstractResolver):
    """Resolves a host name and keeps only the addresses a webhook may reach; none left is
    TargetRefused. aiohttp connects to what this returns, so the address checked is the one
    connected to."""

    def __init__(self, allowed: list) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        found = await self._inner.resolve(host, port, family)
        kept = [info for info in found if not refused(info["host"], self._allowed)]
        if not kept:
            raise TargetRefused(f"{host} resolves to {', '.join(sorted({i['host'] for i in found}))}, "
                                "which webhooks may not reach")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, allowed: list) -> URL:
    """The URL to post to; TargetRefused for a scheme other than http(s), userinfo, or an IP
    literal in a refused network (names are checked when they resolve)."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TargetRefused("not an http(s) URL with a host")
    if parsed.user is not None or parsed.password is not None:
        raise TargetRefused("a URL with a user name or password")
    try:
        literal = ipaddress.ip_address(parsed.host)
    except ValueError:
        return parsed
    if refused(str(literal), allowed):
        raise TargetRefused(f"{parsed.host} is an address webhooks may not reach")
    return parsed


# -- Payloads ----------------------------------------------------------------------------------

def iso_ms(ms: int) -> str | None:
    """Milliseconds since the epoch as the api writes times ("2026-01-02T03:04:05.678Z")."""
    if ms <= 0:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": list(value), "subtype": None}  # as the api writes msgpack bin
    return str(value)


def _unpack(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None


def job_view(fields: dict[bytes, bytes], history: list[bytes]) -> dict:
    """The job as GET /v1/jobs/{id} shows it (api/job_json.cpp), from its hash and history."""
    text = {k.decode(): v for k, v in fields.items()}

    def s(name: str) -> str | None:
        value = text.get(name)
        return value.decode("utf-8", "replace") if value else None

    def n(name: str) -> int | None:
        value = text.get(name)
        return int(value) if value and value.lstrip(b"-").isdigit() else None

    view = {name: s(name) for name in ("id", "type", "tenant", "key_id", "status")}
    view.update({name: n(name) for name in ("priority", "max_attempts", "timeout_s", "attempts")})
    view.update(created_at=iso_ms(n("created_ms") or 0), started_at=iso_ms(n("started_ms") or 0),
                finished_at=iso_ms(n("finished_ms") or 0), error=s("error"), redeliveries=n("redeliveries") or 0,
                result=_unpack(text.get("result")), history=[])
    for entry in history:
        item = _unpack(entry)
        if isinstance(item, list) and len(item) >= 6:
            view["history"].append({"attempt": item[0], "worker": item[1], "started_at": iso_ms(int(item[2] or 0)),
                                    "finished_at": iso_ms(int(item[3] or 0)), "outcome": item[4],
                                    "error": item[5] or None})
    return view


def payload(event: str, ts_ms: int, job: dict, max_bytes: int) -> bytes:
    """The request body: {"type": "job.<event>", "timestamp", "data": job}. Past `max_bytes` the
    job's result is left out ("result_omitted": true: GET /v1/jobs/{id} has it), then its history."""
    body = {"type": f"job.{event}", "timestamp": iso_ms(ts_ms), "data": job}
    for member in ("result", "history"):
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()
        if len(text) <= max_bytes:
            return text
        job[member] = None if member == "result" else []
        job[f"{member}_omitted"] = True
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


# -- Delivery ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Delivery:
    """One event for one target, and where its attempts stand."""

    entry: str        # the stream entry id; the webhook-id is "msg_" followed by it
    job: str
    tenant: str
    event: str
    ts: int           # the event's time, ms
    target: str       # "job" or an endpoint id
    attempt: int = 1  # the number of the next attempt
    body: str = ""    # fixed at the first attempt, so a retry sends what the first one did

    @classmethod
    def from_entry(cls, entry_id: bytes, fields: dict[bytes, bytes]) -> "Delivery":
        f = {k.decode(): v.decode() for k, v in fields.items()}
        return cls(entry_id.decode(), f["job"], f["tenant"], f["event"], int(f["ts"]), f["target"])

    def member(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))


# With sentinels, an answer slower than this means a master that stopped answering without
# closing its connections (a partition): the connection is dropped and the next one asks the
# sentinels again. Well above the longest wait the deliverer asks for (XREADGROUP blocks 1 s).
SENTINEL_READ_TIMEOUT_S = 10


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """The (host, port) of each item of SLUICE_REDIS_SENTINELS ("host:port,[::1]:26379", as the
    api and the broker read it: common/sentinel.cpp); raises ValueError naming a bad item."""
    sentinels = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            host = ""
        if (not host or len(host) > 255 or not port.isdigit() or not 1 <= int(port) <= 65535
                or any(c <= " " or c > "~" or c in ",/@" for c in host) or len(sentinels) == 16):
            raise ValueError(f"SLUICE_REDIS_SENTINELS lists {item!r}, not host:port (at most 16 of them)")
        sentinels.append((host, int(port)))
    return sentinels


def connect_redis(config: Config) -> aioredis.Redis:
    """The deliverer's Redis: at redis_host:redis_port, or the master the sentinels name (redis-py
    asks them again whenever it connects, and drops a connection that reaches a replica)."""
    login = {"username": config.redis_user if config.redis_password else None,
             "password": config.redis_password or None}
    if not config.redis_sentinels:
        return aioredis.Redis(host=config.redis_host, port=config.redis_port, **login)
    sentinels = redis.asyncio.sentinel.Sentinel(config.redis_sentinels, sentinel_kwargs=login, **login)
    return sentinels.master_for(config.redis_master_name, socket_timeout=SENTINEL_READ_TIMEOUT_S)


class Deliverer:
    """One sluice-webhooks process: the loops of the module docstring, sharing one HTTP session."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.redis = connect_redis(config)
        self.slots = asyncio.Semaphore(config.concurrency)
        self.hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}  # host -> (its slots, attempts using them)
        self.in_flight: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self.stopping = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.config.allow_nets), limit=self.config.concurrency,
                                         use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_ms / 1000)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                         headers={"User-Agent": "Sluice-Webhooks/1"}) as self.session:
            await self.create_group()
            # On stdout, as the api's "listening" line: tests and scripts wait for it.
            print(f"sluice-webhooks {self.config.name} delivering from {STREAM} (group {GROUP})", flush=True)
            loops = [asyncio.create_task(self.loop(name, step)) for name, step in
                     (("read", self.read_step), ("reclaim", self.reclaim_step), ("retries", self.retry_step))]
            await self.stopping.wait()
            # The loops end by themselves within a read's block (1 s): a redis-py command
            # cancelled midway can leave its connection waiting forever, so none is cancelled.
            # Posts in flight get their timeout; what is left stays pending for another deliverer.
            await asyncio.wait(loops + list(self.tasks), timeout=self.config.timeout_ms / 1000 + 2)
        await self.redis.aclose()

    async def create_group(self) -> None:
        # From the stream's start ("0"), so entries added before any deliverer ran are delivered.
        while True:
            try:
                await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
                return
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    return
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("redis unreachable (%s); retrying", exc)
                await asyncio.sleep(1)

    def start(self, delivery: Delivery, claimed_member: str | None = None) -> None:
        key = claimed_member or delivery.entry
        if key in self.in_flight:
            return
        self.in_flight.add(key)
        task = asyncio.create_task(self.deliver(delivery, claimed_member))
        self.tasks.add(task)
        task.add_done_callback(lambda t: (self.tasks.discard(t), self.in_flight.discard(key)))

    async def pause(self, seconds: float) -> None:
        """Sleeps `seconds`, or less when the deliverer is told to stop."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def loop(self, what: str, step) -> None:
        """Runs `step` until the deliverer stops; a Redis outage is logged and waited out, not
        fatal, and so is anything else (logged with its trace), so no loop ends before then."""
        while not self.stopping.is_set():
            try:
                await step()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("%s: redis unreachable (%s)", what, exc)
                await self.pause(1)
            except Exception:  # noqa: BLE001 - see above
                log.exception("%s failed; going on in a second", what)
                await self.pause(1)

    async def read_step(self) -> None:
        if len(self.tasks) >= MAX_PENDING:
            await self.pause(0.1)
            return
        read = await self.redis.xreadgroup(GROUP, self.config.name, {STREAM: ">"}, count=READ_BATCH, block=1000)
        for _, entries in read or []:
            for entry_id, fields in entries:
                self.start(Delivery.from_entry(entry_id, fields))

    async def reclaim_step(self) -> None:
        cursor = "0-0"
        while len(self.tasks) < MAX_PENDING:
            cursor, entries, _ = await self.redis.xautoclaim(STREAM, GROUP, self.config.name,
                                                             self.config.claim_idle_ms, cursor, count=READ_BATCH)
            for entry_id, fields in entries:
                if fields:
                    self.start(Delivery.from_entry(entry_id, fields))
            if cursor in (b"0-0", "0-0"):
                break
        await self.pause(min(5.0, self.config.claim_idle_ms / 4000))

    async def retry_step(self) -> None:
        now = int(time.time() * 1000)
        # EVAL, not EVALSHA and SCRIPT LOAD: the Redis user may not run SCRIPT (it could flush).
        members = await self.redis.eval(CLAIM_RETRIES, 1, RETRIES, now, self.config.claim_idle_ms, READ_BATCH)
        for member in members:
            text = member.decode()
            self.start(Delivery(**json.loads(text)), claimed_member=text)
        await self.pause(min(1.0, self.config.retry_base_ms / 4000))

    async def deliver(self, d: Delivery, claimed_member: str | None) -> None:
        try:
            await self.attempt(d, claimed_member)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # Left pending (or leased): another pass takes it again once Redis is back.
            log.warning("delivery %s: redis unreachable (%s)", d.entry, exc)
        except Exception:  # noqa: BLE001 - one bad entry must not stop the deliverer
            log.exception("delivery %s of job %s failed", d.entry, d.job)

    async def target(self, d: Delivery) -> tuple[str, str] | None:
        """(url, secret) of the delivery's target; None once it is gone (job expired, endpoint deleted)."""
        if d.target == "job":
            url = await self.redis.hget(JOB_PREFIX + d.job, "webhook_url")
            if url is None:
                return None
            key = SECRET_PREFIX + d.tenant
            await self.redis.set(key, make_secret(), nx=True)
            secret = await self.redis.get(key)
            return url.decode(), secret.decode()
        record = await self.redis.hget(ENDPOINTS_PREFIX + d.tenant, d.target)
        if record is None:
            return None
        endpoint = json.loads(record)
        return endpoint["url"], endpoint["secret"]

    async def attempt(self, d: Delivery, claimed_member: str | None) -> None:
        found = await self.target(d)
        if found is None:
            log.info("delivery %s: its target %s of job %s is gone; dropped", d.entry, d.target, d.job)
            await self.done(d, claimed_member)
            return
        url, secret = found
        if not d.body:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hmget(JOB_PREFIX + d.job, JOB_FIELDS).lrange(HISTORY_PREFIX + d.job, 0, -1)
                values, history = await pipe.execute()
            fields = {name.encode(): value for name, value in zip(JOB_FIELDS, values) if value is not None}
            if not fields:
                await self.done(d, claimed_member)
                return
            d.body = payload(d.event, d.ts, job_view(fields, history), self.config.max_body_bytes).decode()
        started = time.monotonic()
        status, outcome, error = await self.post(url, secret, d)
        now_ms = int(time.time() * 1000)
        retry_in = 0
        if outcome == "retrying":
            backoff = min(self.config.retry_base_ms * 2 ** (d.attempt - 1), self.config.retry_max_ms)
            retry_in = int(backoff * random.uniform(0.75, 1.25))
            if now_ms + retry_in > d.ts + self.config.max_age_s * 1000:
                outcome = "failed"
        await self.record(d, url, status, outcome, error, int((time.monotonic() - started) * 1000))
        if outcome == "retrying":
            await self.reschedule(d, claimed_member, now_ms + retry_in)
        else:
            await self.done(d, claimed_member)

    async def post(self, url: str, secret: str, d: Delivery) -> tuple[int | None, str, str | None]:
        """Makes one attempt: (HTTP status or None, outcome, error). A 2xx is delivered; a
        refused target is final; anything else is retried."""
        host = URL(url).host or ""
        per_host, users = self.hosts.get(host) or (asyncio.Semaphore(self.config.per_host), 0)
        self.hosts[host] = (per_host, users + 1)
        try:
            parsed = check_url(url, self.config.allow_nets)
            async with per_host, self.slots:
                msg_id, stamp = f"msg_{d.entry}", int(time.time())
                body = d.body.encode()
                headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
                           "webhook-signature": sign(secret, msg_id, stamp, body)}
                async with self.session.post(parsed, data=body, headers=headers, allow_redirects=False) as response:
                    peek = await response.content.read(RESPONSE_PEEK_BYTES)
                    if 200 <= response.status < 300:
                        return response.status, "delivered", None
                    return response.status, "retrying", peek.decode("utf-8", "replace")[:MAX_ERROR_CHARS] or None
        except TargetRefused as exc:
            return None, "refused", str(exc)
        except asyncio.TimeoutError:
            return None, "retrying", f"no answer within {self.config.timeout_ms} ms"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return None, "retrying", (f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        finally:
            per_host, users = self.hosts[host]
            if users == 1:
                del self.hosts[host]
            else:
                self.hosts[host] = (per_host, users - 1)

    async def record(self, d: Delivery, url: str, status: int | None, outcome: str, error: str | None,
                     duration_ms: int) -> None:
        entry = {"webhook_id": f"msg_{d.entry}", "event": d.event, "target": d.target, "url": url,
                 "attempt": d.attempt, "at": iso_ms(int(time.time() * 1000)), "status": status, "outcome": outcome,
                 "error": error, "duration_ms": duration_ms}
        key = ATTEMPTS_PREFIX + d.job
        ttl_ms = await self.redis.pttl(JOB_PREFIX + d.job)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(entry, separators=(",", ":")))
            pipe.ltrim(key, -MAX_ATTEMPTS_KEPT, -1)
            pipe.pexpire(key, ttl_ms if ttl_ms > 0 else self.config.job_ttl_s * 1000)
            await pipe.execute()
        log.info("job %s %s to %s: attempt %d %s (%s)", d.job, d.event, d.target, d.attempt, outcome, status or error)

    @staticmethod
    def finish(pipe, d: Delivery, claimed_member: str | None) -> None:
        """Queues what ends this delivery's hold: the stream entry acknowledged and deleted (the
        stream then holds only what is owed), or the claimed retry removed."""
        if claimed_member is None:
            pipe.xack(STREAM, GROUP, d.entry)
            pipe.xdel(STREAM, d.entry)
        else:
            pipe.zrem(RETRIES, claimed_member)

    async def done(self, d: Delivery, claimed_member: str | None) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.finish(pipe, d, claimed_member)
            await pipe.execute()

    async def reschedule(self, d: Delivery, claimed_member: str | None, due_ms: int) -> None:
        d.attempt += 1
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(RETRIES, {d.member(): due_ms})
            self.finish(pipe, d, claimed_member)
            await pipe.execute()


def main(argv: list[str] | None = None) -> int:
    """The sluice-webhooks entry point: runs a deliverer until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="sluice-webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("SLUICE_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
    logging.basicConfig(level=levels.get(args.log_level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = Config.from_env()
    except (ValueError, OSError) as exc:
        print(f"sluice-webhooks: {exc}", flush=True)
        return 2

    async def run() -> None:
        deliverer = Deliverer(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, deliverer.stopping.set)
        await deliverer.run()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
