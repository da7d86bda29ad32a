"""Records every user for /stats and broadcasts, and stops banned users before any handler.

Bans, maintenance and the rate limits of new requests are decided elsewhere, in one place:
bot.services.admission, where a request becomes a job. The ban check here only spares a banned
user's updates the handlers' work (dialogs, downloads) and answers them once in a while.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from redis.asyncio import Redis

from bot.middlewares.types import NextHandler
from bot.middlewares.update_read import BANNED
from bot.queue import Banned
from bot.services.admission import refusal_text
from bot.services.quotas import QuotaService
from contract import keys

log = logging.getLogger(__name__)


class QuotaMiddleware(BaseMiddleware):
    """Outer middleware for messages and callback queries (after i18n, which supplies ``t``)."""

    def __init__(self, quotas: QuotaService, redis: Redis) -> None:
        self.quotas = quotas
        self.redis = redis

    async def __call__(self, handler: NextHandler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return await handler(event, data)
        banned = data.get(BANNED, False)  # the update's one read (bot.middlewares.update_read) checked
        if banned and not self.quotas.is_admin(user.id):
            t = data.get("t")
            if t is not None:
                await self._tell_banned(event, user.id, refusal_text(t, Banned()))
            log.info("update from banned user %s dropped", user.id)
            return None
        return await handler(event, data)

    async def _tell_banned(self, event: TelegramObject, user_id: int, text: str) -> None:
        if isinstance(event, CallbackQuery):
            await event.answer(text, show_alert=True)
            return
        fresh = await self.redis.set(keys.ban_notice(user_id), "1", nx=True, ex=keys.BAN_NOTICE_TTL)
        if fresh and isinstance(event, Message):
            await event.answer(text)
