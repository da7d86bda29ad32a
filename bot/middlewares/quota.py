"""Bans, maintenance mode and per-user rate limits in front of the job queue.

Limits are counted where a request really becomes a job — :class:`GuardedQueue` wraps the
queue's ``submit`` — so a multi-step dialog (two photos, then weights) counts once, and the
"again" and "variations" buttons count like typed requests. The refusal travels up as
:class:`QuotaRefused` and :class:`QuotaMiddleware` turns it into the user's message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from redis.asyncio import Redis

from bot.metrics import BotMetrics
from bot.queue import JobQueue, QueueSettings, Submission
from bot.services.quotas import Decision, QuotaService, Verdict
from contract import keys
from contract.spec import JobSpec

log = logging.getLogger(__name__)

class QuotaRefused(Exception):
    """Raised by :meth:`GuardedQueue.submit` instead of queueing; nothing was queued."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.verdict.value)
        self.decision = decision


class GuardedQueue(JobQueue):
    """The job queue as handlers see it: ``submit`` asks :class:`QuotaService` first.

    Built like a JobQueue (same Redis client and settings) plus the quota service; everything
    but ``submit`` is the JobQueue's own behaviour.
    """

    def __init__(self, redis_client: aioredis.Redis, settings: QueueSettings, *, quotas: QuotaService,
                 metrics: BotMetrics | None = None) -> None:
        super().__init__(redis_client, settings)
        self._quotas = quotas
        self._metrics = metrics

    async def submit(self, spec: JobSpec, *, is_admin: bool = False) -> Submission:
        decision = await self._quotas.admit(spec.user_id)
        if not decision.allowed:
            log.info("job refused for user %s in chat %s: %s", spec.user_id, spec.chat_id,
                     decision.verdict.value)
            if self._metrics is not None:
                self._metrics.requests_refused.labels(decision.verdict.value).inc()
            raise QuotaRefused(decision)
        try:
            submission = await super().submit(spec, is_admin=is_admin)
        except BaseException:
            await self._quotas.refund(spec.user_id, decision)
            raise
        if self._metrics is not None:
            self._metrics.jobs_submitted.labels(spec.mode.value).inc()
        return submission


def refusal_text(t: Callable[..., str], decision: Decision, now: float | None = None) -> str:
    """The user's message for a refusal, with the time of the next free slot where there is one."""
    now = time.time() if now is None else now
    limits = decision.limits
    if decision.verdict is Verdict.BANNED:
        return t("quota-banned")
    if decision.verdict is Verdict.MAINTENANCE:
        return t("quota-maintenance")
    if decision.verdict is Verdict.INFLIGHT:
        return t("quota-inflight", limit=limits.inflight if limits else 0)
    retry_at = decision.retry_at or now
    at = dt.datetime.fromtimestamp(retry_at, dt.UTC).strftime("%H:%M:%S")
    wait = max(1, math.ceil(retry_at - now))
    if decision.verdict is Verdict.PER_DAY:
        return t("quota-per-day", limit=limits.per_day if limits else 0, time=at)
    return t("quota-per-minute", limit=limits.per_minute if limits else 0, time=at, seconds=wait)


class QuotaMiddleware(BaseMiddleware):
    """Outer middleware for messages and callback queries (after i18n, which supplies ``t``).

    Records the user for /stats and broadcasts, stops banned users before any handler, and
    answers a :class:`QuotaRefused` raised while a handler submits a job.
    """

    def __init__(self, quotas: QuotaService, redis: Redis) -> None:
        self.quotas = quotas
        self.redis = redis

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return await handler(event, data)
        banned = await self.quotas.seen(user.id)  # one round trip for both (on every update)
        t = data.get("t")
        if banned and not self.quotas.is_admin(user.id):
            if t is not None:
                await self._tell_banned(event, user.id, t("quota-banned"))
            log.info("update from banned user %s dropped", user.id)
            return None
        try:
            return await handler(event, data)
        except QuotaRefused as refused:
            if t is None:
                raise
            await _answer(event, refusal_text(t, refused.decision))
            return None

    async def _tell_banned(self, event: TelegramObject, user_id: int, text: str) -> None:
        if isinstance(event, CallbackQuery):
            await event.answer(text, show_alert=True)
            return
        fresh = await self.redis.set(keys.ban_notice(user_id), "1", nx=True, ex=keys.BAN_NOTICE_TTL)
        if fresh:
            await _answer(event, text)


async def _answer(event: TelegramObject, text: str) -> None:
    if isinstance(event, Message):
        await event.answer(text)
    elif isinstance(event, CallbackQuery):
        # The handler may have answered the press already; the message below is what matters.
        with contextlib.suppress(TelegramBadRequest):
            await event.answer()
        if event.message is not None:
            await event.bot.send_message(event.message.chat.id, text)  # type: ignore[union-attr]
