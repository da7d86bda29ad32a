"""Every Redis client of the bot and the workers is built here: a plain ``REDIS_URL`` or, for
production, a Sentinel-managed master (``REDIS_SENTINELS`` + ``REDIS_SENTINEL_SERVICE``).

Why one module: the bot's client (FSM storage, admission, events consumer), RQ's sync connection
on both sides and the health checks must all follow a failover the same way. With Sentinel each
connection asks the sentinels where the master is when it (re)connects; a command that meets a
dead master (ConnectionError) or a demoted one (READONLY, turned into a ConnectionError by
redis-py's SentinelManagedConnection) disconnects, backs off and retries, for about
``failover_s`` seconds, so writes during a failover land on the new master.

Why WAIT (:func:`replicate`): Redis replicates asynchronously, so a job the admission script
accepted and RQ enqueued could still exist only on the master when it dies; Sentinel then
promotes a replica without it and the accepted request is gone. After the enqueue (and after a
delivery's dedupe marker and ack, which would otherwise be re-sent) the bot writes a small fence
key and issues ``WAIT 1 <timeout>`` on the same connection: WAIT returns once a replica has
acknowledged everything up to the fence, i.e. everything this process wrote before it (the
replication stream is ordered). Sentinel promotes the replica with the largest replication
offset, so the promoted one holds the job. If no replica answers in time (the replica itself is
down, so there is nothing to fail over to) the request is kept on the master (AOF) and a warning
is logged: refusing it would turn a replica outage into a bot outage. Operators who want writes
to stop instead set ``min-replicas-to-write 1`` on the master (docker-compose.yml shows how).
``min-replicas-to-write`` alone was not chosen: it checks replica *lag*, not that this write
arrived, so it narrows the window but does not close it.

This module imports redis and pydantic only (no aiogram, no torch): both sides import it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel as SyncSentinel
from redis.sentinel import SentinelManagedConnection as SyncSentinelConnection

from contract import keys

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "kandinsky"
"""The master name the sentinels monitor (``sentinel monitor kandinsky ...``)."""
DEFAULT_FAILOVER_S = 30.0
"""How long a command keeps retrying while the master is gone: Sentinel needs its
``down-after-milliseconds`` (docker-compose sets 5 s) plus an election and a promotion; 30 s
covers that with room, and a user's update waits rather than fails."""
PLAIN_RETRIES = 5
"""A plain Redis restarted in place comes back in well under a second: five tries suffice."""
RETRY_BASE_S = 0.1
"""First pause before a retry: a stale pooled connection usually works on the next try."""
RETRY_CAP_S = 1.0
"""Longest pause between two tries under Sentinel: short, so a promoted master is found within a second."""
PLAIN_RETRY_CAP_S = 2.0
"""Longest pause between two tries of a plain server: five tries then span a restart of a few seconds."""
SENTINEL_SOCKET_TIMEOUT_S = 1.0
"""One question to one sentinel ("where is the master?"): they answer from memory, so a second
means that sentinel is down and the next one is asked."""
CONNECT_TIMEOUT_S = 5.0
"""Opening a connection to a master that went away without a reset (a lost host): past this the
connection counts as failed and the retry asks the sentinels again."""
WAIT_REPLICAS = 1
"""Replicas that must hold an accepted job before the user is told it is queued: the one Sentinel
will promote (it picks the most up-to-date replica)."""
WAIT_TIMEOUT_MS = 1000
"""How long the bot waits for that replica: replication on a LAN takes a millisecond; a second
means the replica is down, and the request stays accepted on the master (see the module doc)."""
FENCE_TTL_S = 60
"""The fence key only carries WAIT's replication offset; it is overwritten on every use."""
RETRY_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)
"""What a failover looks like to a client: a dead master, a slow one, a demoted one."""


class SentinelsError(ValueError):
    """``REDIS_SENTINELS`` is not a comma-separated list of host:port."""


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``"s1:26379, s2:26379"`` -> ``(("s1", 26379), ("s2", 26379))``; empty: no Sentinel."""
    out: list[tuple[str, int]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port_text = item.rpartition(":")
        host = host.strip().strip("[]")
        if not sep or not host:
            raise SentinelsError(f"REDIS_SENTINELS: {item!r} is not host:port (e.g. sentinel-1:26379)")
        try:
            port = int(port_text)
        except ValueError:
            raise SentinelsError(
                f"REDIS_SENTINELS: {item!r} has no port number (e.g. sentinel-1:26379)") from None
        if not 0 < port < 65536:
            raise SentinelsError(
                f"REDIS_SENTINELS: {item!r}: the port must be 1-65535 (e.g. sentinel-1:26379)")
        out.append((host, port))
    if text.strip() and not out:
        raise SentinelsError("REDIS_SENTINELS: no host:port in it (e.g. sentinel-1:26379,sentinel-2:26379)")
    return tuple(out)


DEFAULT_URL = "redis://localhost:6379/0"
"""A local Redis, as in development; production always sets REDIS_URL (with a password)."""


class RedisSettings(BaseModel):
    """The Redis variables, the same for the bot and the workers (a mixin of both settings)."""

    redis_url: SecretStr = Field(default=SecretStr(DEFAULT_URL), validation_alias=AliasChoices("REDIS_URL"))
    """May hold the Redis password: unwrapped only where the client is built."""
    redis_sentinels: str = Field(default="", validation_alias=AliasChoices("REDIS_SENTINELS"))
    """Sentinels as ``host:port,host:port``; set: the master comes from them (REDIS_URL then only
    gives the password and database), empty: REDIS_URL's server."""
    redis_sentinel_service: str = Field(default=DEFAULT_SERVICE, min_length=1,
                                        validation_alias=AliasChoices("REDIS_SENTINEL_SERVICE"))
    """The master name the sentinels monitor."""
    redis_sentinel_password: SecretStr = Field(default=SecretStr(""),
                                               validation_alias=AliasChoices("REDIS_SENTINEL_PASSWORD"))
    """The sentinels' own password (their ``requirepass``), if they have one."""
    redis_failover_s: float = Field(default=DEFAULT_FAILOVER_S, gt=0, le=600,
                                    validation_alias=AliasChoices("REDIS_FAILOVER_S"))
    """How long commands keep retrying while Sentinel replaces a lost master."""

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_host_port(cls, value: str) -> str:
        parse_sentinels(value)  # a SentinelsError (a ValueError) says which entry is wrong
        return value.strip()

    def redis_target(self) -> RedisTarget:
        """Where this process's Redis clients connect (:func:`async_client`, :func:`sync_client`)."""
        return RedisTarget(url=self.redis_url.get_secret_value(),
                           sentinels=parse_sentinels(self.redis_sentinels),
                           service=self.redis_sentinel_service,
                           sentinel_password=self.redis_sentinel_password.get_secret_value() or None,
                           failover_s=self.redis_failover_s)


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is. With ``sentinels`` the URL still gives the password, user and database of
    the data servers (its host is ignored: the sentinels say which server is the master)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = DEFAULT_SERVICE
    sentinel_password: str | None = None
    failover_s: float = DEFAULT_FAILOVER_S

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.sentinels)

    @property
    def wait_replicas(self) -> int:
        """Replicas :func:`replicate` waits for: one with Sentinel, none with a single server."""
        return WAIT_REPLICAS if self.uses_sentinel else 0

    @property
    def retry_cap_s(self) -> float:
        return RETRY_CAP_S if self.uses_sentinel else PLAIN_RETRY_CAP_S

    def retries(self) -> int:
        """Tries that add up to about ``failover_s`` of pauses (backoff capped at RETRY_CAP_S)."""
        if not self.uses_sentinel:
            return PLAIN_RETRIES
        return max(PLAIN_RETRIES, math.ceil(self.failover_s / RETRY_CAP_S))

    def describe(self) -> str:
        """For logs: never the password."""
        if self.uses_sentinel:
            where = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel master {self.service!r} via {where}"
        parts = urlsplit(self.url)
        return f"redis at {parts.hostname}:{parts.port or 6379}"


def _url_auth(url: str) -> dict[str, Any]:
    """Password, user and database of a redis:// URL (what the data servers need under Sentinel)."""
    parts = urlsplit(url)
    out: dict[str, Any] = {}
    if parts.password:
        out["password"] = unquote(parts.password)
    if parts.username:
        out["username"] = unquote(parts.username)
    path = parts.path.strip("/")
    if path:
        out["db"] = int(path)
    return out


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
                              "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S}
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


class FailoverConnection(AsyncSentinelConnection):
    """Asks the sentinels where the master is on *every* (re)connect.

    redis-py's SentinelManagedConnection does so only in ``connect()``; a command's retry
    reconnects through ``send_packed_command`` -> ``connect_check_health`` -> ``_connect``, which
    dials the old master's address again, so every retry of a failover hit the dead server
    (seen with redis-py 8.1: 18 s of "connection refused" while Sentinel had long promoted the
    replica). Resolving in ``_connect`` covers both paths.
    """

    async def _connect(self) -> None:
        if self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()


class SyncFailoverConnection(SyncSentinelConnection):
    """:class:`FailoverConnection` for the blocking client (RQ, health checks)."""

    def _connect(self) -> Any:
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()


class BlockingSentinelPool(AsyncSentinelPool, aioredis.BlockingConnectionPool):
    """A Sentinel pool that, like the bot's plain one, makes a command wait for a free connection
    in a burst instead of failing it ("Too many connections")."""


def async_client(target: RedisTarget, *, max_connections: int | None = None,
                 pool_timeout: float | None = None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client that rides out restarts and failovers (retries per :meth:`RedisTarget.retries`).

    ``max_connections``: a blocking pool of that size (commands wait up to ``pool_timeout`` for a
    free connection); None: redis-py's default pool.
    """
    retry = AsyncRetry(ExponentialBackoff(cap=target.retry_cap_s, base=RETRY_BASE_S), target.retries())
    common: dict[str, Any] = {"retry": retry, "retry_on_error": list(RETRY_ERRORS), **kwargs}
    if target.uses_sentinel:
        common.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
        sentinel = AsyncSentinel(list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target))
        pool_kwargs: dict[str, Any] = {**_url_auth(target.url), "connection_class": FailoverConnection,
                                       **common}
        if max_connections is not None:
            pool_kwargs.update(max_connections=max_connections, timeout=pool_timeout)
            client: aioredis.Redis = sentinel.master_for(
                target.service, connection_pool_class=BlockingSentinelPool, **pool_kwargs)
        else:
            client = sentinel.master_for(target.service, **pool_kwargs)
        return client
    if max_connections is not None:
        pool = aioredis.BlockingConnectionPool.from_url(target.url, max_connections=max_connections,
                                                        timeout=pool_timeout, **common)
        return aioredis.Redis.from_pool(pool)
    return aioredis.Redis.from_url(target.url, **common)


def sync_client(target: RedisTarget, **kwargs: Any) -> redis.Redis:
    """A blocking client (RQ's connection, health checks). Under Sentinel it retries through a
    failover like :func:`async_client`; a plain server keeps redis-py's defaults, as before
    Sentinel existed: RQ's worker loop rides out a restart itself, and a job whose result cannot be
    written is handed back rather than stalling in retries (tests/queue/test_redis_outage.py)."""
    if not target.uses_sentinel:
        return redis.Redis.from_url(target.url, **kwargs)
    retry = SyncRetry(ExponentialBackoff(cap=target.retry_cap_s, base=RETRY_BASE_S), target.retries())
    common: dict[str, Any] = {"retry": retry, "retry_on_error": list(RETRY_ERRORS), **kwargs}
    common.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    sentinel = SyncSentinel(list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target))
    client: redis.Redis = sentinel.master_for(target.service, connection_class=SyncFailoverConnection,
                                              **_url_auth(target.url), **common)
    return client


SYNC_RETRY_CAP_S = 2.0
"""Longest pause between two tries of the sync twin; Redis restarts in well under a second."""
_SYNC_KWARGS = (
    "host", "port", "db", "username", "password", "path", "socket_timeout", "socket_connect_timeout",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname",
)
"""Connection settings that mean the same to the sync client; the rest are async-only internals."""


def sync_twin(client: aioredis.Redis) -> redis.Redis:
    """A sync client for the same server and database as ``client`` (TCP, TLS or Unix socket): RQ's
    connection beside the bot's asyncio client."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _SYNC_KWARGS}
    retry = pool.connection_kwargs.get("retry")
    if retry is not None and pool.connection_kwargs.get("retry_on_error"):
        # The same reconnect-and-retry policy as the async client (e.g. across a Redis restart).
        kwargs["retry"] = SyncRetry(ExponentialBackoff(cap=SYNC_RETRY_CAP_S, base=0.1), retry.get_retries())
        kwargs["retry_on_error"] = list(pool.connection_kwargs["retry_on_error"])
    connection_class: type[redis.Connection] | type[redis.UnixDomainSocketConnection] = redis.Connection
    if issubclass(pool.connection_class, aioredis.SSLConnection):
        connection_class = redis.SSLConnection
    elif issubclass(pool.connection_class, aioredis.UnixDomainSocketConnection):
        connection_class = redis.UnixDomainSocketConnection
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs))


def _fence_value(job_ids: Iterable[str]) -> str:
    return ",".join(job_ids) or "-"


async def replicate(client: aioredis.Redis, target: RedisTarget, *what: str) -> int | None:
    """Wait until a replica holds everything this process wrote so far (see the module doc).

    Returns the replicas that acknowledged, or None with a single server (nothing to wait for).
    The fence write and WAIT go in one non-transactional pipeline: one connection, so WAIT
    measures from the fence, which comes after every earlier write of this process.
    """
    if target.wait_replicas <= 0:
        return None
    async with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.REPLICATION_FENCE, _fence_value(what), ex=FENCE_TTL_S)
        pipe.execute_command("WAIT", target.wait_replicas, WAIT_TIMEOUT_MS)
        replies: list[Any] = await pipe.execute()
    acked = int(replies[-1])
    if acked < target.wait_replicas:
        log.warning("redis: %s written on the master only: %d of %d replica(s) acknowledged within %d ms",
                    _fence_value(what), acked, target.wait_replicas, WAIT_TIMEOUT_MS)
    return acked


def replicate_sync(client: redis.Redis, target: RedisTarget, *what: str) -> int | None:
    """:func:`replicate` for a blocking client."""
    if target.wait_replicas <= 0:
        return None
    with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.REPLICATION_FENCE, _fence_value(what), ex=FENCE_TTL_S)
        pipe.execute_command("WAIT", target.wait_replicas, WAIT_TIMEOUT_MS)
        replies: list[Any] = pipe.execute()
    acked = int(replies[-1])
    if acked < target.wait_replicas:
        log.warning("redis: %s written on the master only: %d of %d replica(s) acknowledged within %d ms",
                    _fence_value(what), acked, target.wait_replicas, WAIT_TIMEOUT_MS)
    return acked
