"""Prometheus metrics and the health check of a bot replica.

Job counts and queue depth are read from Redis when Prometheus scrapes, so every replica
reports the same deployment-wide numbers and nothing is lost when a replica restarts; what only
this replica sees (Telegram errors, refusals) is counted in its own registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import redis as redis_sync
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from contract import keys, redisconn
from contract import stats as jobstats
from contract.observability import HEALTH_REDIS_TIMEOUT_S, serve
from contract.queue import QUEUES_IN_ORDER
from contract.redisconn import RedisTarget

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)


_ERROR_KINDS: tuple[tuple[type[TelegramAPIError], str], ...] = (
    (TelegramRetryAfter, "retry_after"),
    (TelegramMigrateToChat, "migrate"),
    (TelegramEntityTooLarge, "too_large"),
    (TelegramNetworkError, "network"),
    (TelegramForbiddenError, "forbidden"),
    (TelegramNotFound, "not_found"),
    (TelegramConflictError, "conflict"),
    (TelegramUnauthorizedError, "unauthorized"),
    (TelegramServerError, "server"),
    (TelegramBadRequest, "bad_request"),
)


def error_kind(exc: TelegramAPIError) -> str:
    for cls, kind in _ERROR_KINDS:
        if isinstance(exc, cls):
            return kind
    return "other"


class RedisStatsCollector(Collector):
    """Deployment-wide numbers read from Redis at scrape time (runs in the endpoint's thread)."""

    def __init__(self, client: redis_sync.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        jobs = CounterMetricFamily("kb_jobs", "Finished jobs by mode and outcome (all workers)",
                                   labels=["mode", "outcome"])
        depth = GaugeMetricFamily("kb_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        try:
            counts = jobstats.parse_counts(self.client.hgetall(keys.STATS_TOTAL))  # type: ignore[arg-type]
            for (mode, outcome), value in sorted(counts.items()):
                jobs.add_metric([mode, outcome], value)
            for name in QUEUES_IN_ORDER:
                depth.add_metric([name], int(self.client.llen(keys.rq_queue(name))))  # type: ignore[arg-type]
        except redis_sync.RedisError as exc:
            log.warning("metrics: Redis unreadable: %s", exc)
        yield jobs
        yield depth


class BotMetrics:
    """One registry per bot process (no module-level globals)."""

    def __init__(self, client: redis_sync.Redis | None = None) -> None:
        self.registry = CollectorRegistry()
        self.telegram_errors = Counter(
            "kb_bot_telegram_errors", "Telegram API errors by kind and method", ["kind", "method"],
            registry=self.registry,
        )
        self.jobs_submitted = Counter(
            "kb_bot_jobs_submitted", "Jobs this replica queued, by mode", ["mode"], registry=self.registry
        )
        self.requests_refused = Counter(
            "kb_bot_requests_refused", "New requests refused (ban, maintenance, limits)", ["reason"],
            registry=self.registry,
        )
        if client is not None:
            self.registry.register(RedisStatsCollector(client))


class TelegramErrorMetrics(BaseRequestMiddleware):
    """Session middleware: counts every Telegram error by kind, then lets it propagate."""

    def __init__(self, metrics: BotMetrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramAPIError as exc:
            self.metrics.telegram_errors.labels(error_kind(exc), type(method).__name__).inc()
            raise


def redis_health(client: redis_sync.Redis) -> tuple[bool, str]:
    """Healthy when Redis answers a PING: without Redis the bot can neither queue nor deliver."""
    try:
        client.ping()
    except redis_sync.RedisError as exc:
        return False, f"redis unreachable: {type(exc).__name__}"
    return True, "ok"


def sync_client(target: RedisTarget | str) -> redis_sync.Redis:
    """A small blocking client for the endpoint thread, with short timeouts (a plain URL or a
    Sentinel-managed master: contract.redisconn)."""
    where = target if isinstance(target, RedisTarget) else RedisTarget(url=target)
    return redisconn.sync_client(where, socket_timeout=HEALTH_REDIS_TIMEOUT_S,
                                 socket_connect_timeout=HEALTH_REDIS_TIMEOUT_S)


class HealthEndpoint:
    """``/metrics`` and ``/healthz`` of this replica, served while the bot runs (port 0: not at all)."""

    def __init__(self, port: int, metrics: BotMetrics, client: redis_sync.Redis) -> None:
        self.port = port
        self.metrics = metrics
        self.client = client
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        if not self.port or self._server is not None:
            return
        self._server = serve(self.port, self.metrics.registry, lambda: redis_health(self.client))
        log.info("bot metrics and health on port %s", self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
