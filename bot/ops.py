"""Operations wiring (issue 5): quotas, sticker packs, admin commands, broadcasts and metrics.

``bot.app.run_bot`` builds one :class:`Ops` per process and plugs it in with a few calls, so
the production bot and the end-to-end tests assemble exactly the same pieces.

Environment (read by bot.config.BotSettings):

| variable          | default | meaning                                                         |
|-------------------|---------|-----------------------------------------------------------------|
| `ADMIN_IDS`       | empty   | numeric Telegram user ids, comma-separated: admin commands, no limits |
| `RATE_PER_MINUTE` | 5       | new requests (jobs) per user per sliding minute                 |
| `RATE_PER_DAY`    | 100     | new requests per user per UTC day                               |
| `MAX_INFLIGHT`    | 2       | jobs a user may have queued or running at once                  |
| `BROADCAST_RATE`  | 25      | broadcast messages per second (at most 30)                      |
| `HEALTH_PORT`     | 0 (off) | port of `/metrics` (Prometheus) and `/healthz`                  |

Admins change one user's limits at run time with ``/limits <id> <per minute> <per day> <in flight>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import redis as redis_sync
from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from redis.asyncio import Redis

from bot.admin import AdminLog, BroadcastService, StatsService
from bot.config import BotSettings
from bot.i18n import I18n
from bot.metrics import BotMetrics, TelegramErrorMetrics, redis_health, sync_client
from bot.middlewares.quota import GuardedQueue, QuotaMiddleware
from bot.packs import PackService
from bot.queue import QueueSettings
from bot.quotas import Limits, QuotaService
from bot.routers import admin as admin_router
from bot.routers import packs as packs_router
from contract.observability import serve

log = logging.getLogger(__name__)


@dataclass
class Ops:
    settings: BotSettings
    redis: Redis
    sync_redis: redis_sync.Redis
    quotas: QuotaService
    admin_log: AdminLog
    stats: StatsService
    metrics: BotMetrics
    broadcasts: BroadcastService | None = None
    packs: PackService | None = None
    server: ThreadingHTTPServer | None = None
    _started: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, settings: BotSettings, redis: Redis) -> Ops:
        sync = sync_client(settings.redis_url.get_secret_value())
        limits = Limits(per_minute=settings.rate_per_minute, per_day=settings.rate_per_day,
                        inflight=settings.max_inflight)
        return cls(
            settings=settings,
            redis=redis,
            sync_redis=sync,
            quotas=QuotaService(redis, frozenset(settings.admin_ids), limits),
            admin_log=AdminLog(redis),
            stats=StatsService(redis, sync),
            metrics=BotMetrics(sync),
        )

    def job_queue(self) -> GuardedQueue:
        """The JobQueue handlers get: every submit passes bans, maintenance and limits first."""
        queue_settings = QueueSettings(per_user_inflight=max(1, self.settings.max_inflight))
        return GuardedQueue(self.redis, queue_settings, quotas=self.quotas, metrics=self.metrics)

    def routers(self) -> list[Router]:
        return [packs_router.make_router(), admin_router.make_router()]

    def middlewares(self) -> list[BaseMiddleware]:
        return [QuotaMiddleware(self.quotas, self.redis)]

    async def start(self, bot: Bot, dp: Dispatcher, i18n: I18n) -> None:
        """Finish wiring once the bot is known; call before polling or the webhook starts."""
        me = await bot.me()
        self.packs = PackService(self.redis, me.username or "")
        self.broadcasts = BroadcastService(self.redis, rate=self.settings.broadcast_rate,
                                           on_finish=admin_router.report_sender(i18n))
        bot.session.middleware(TelegramErrorMetrics(self.metrics))
        dp["quotas"] = self.quotas
        dp["packs"] = self.packs
        dp["broadcasts"] = self.broadcasts
        dp["stats"] = self.stats
        dp["admin_log"] = self.admin_log
        dp["metrics"] = self.metrics
        if self.settings.health_port:
            self.server = serve(self.settings.health_port, self.metrics.registry,
                                lambda: redis_health(self.sync_redis))
            log.info("bot metrics and health on port %s", self.settings.health_port)
        resumed = await self.broadcasts.resume_all(bot)
        if resumed:
            log.info("resuming %d unfinished broadcast(s)", len(resumed))

    async def stop(self) -> None:
        if self.broadcasts is not None:
            await self.broadcasts.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.sync_redis.close)
