"""Puts the user's translator and settings into every handler's data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.services.quotas import QuotaService
from bot.services.user_settings import SettingsStore
from bot.ui.i18n import I18n

BANNED = "user_banned"
"""Handler data: the ban check this middleware's round trip made for the quota middleware."""


class I18nMiddleware(BaseMiddleware):
    """Locale = the one chosen in /settings, else the user's Telegram language, else the default."""

    def __init__(self, i18n: I18n, store: SettingsStore, quotas: QuotaService) -> None:
        self.i18n = i18n
        self.store = store
        self.quotas = quotas

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            locale = self.i18n.default_locale
        else:
            # One round trip per update: the settings; the "blocked the bot" mark cleared (a user who
            # writes to us has not blocked us); and, for the quota middleware after this one, the
            # user recorded for /stats and broadcasts and the ban check (``data[BANNED]``).
            async with self.store.redis.pipeline(transaction=False) as pipe:
                self.store.queue_read(pipe, user.id, unmark_blocked=True)
                if not user.is_bot:
                    self.quotas.queue_seen(pipe, user.id)
                replies = await pipe.execute()
            if not user.is_bot:
                data[BANNED] = bool(replies[-1])
            settings = self.store.parse(user.id, replies[0])
            data["user_settings"] = settings
            locale = settings.locale or self.i18n.pick(user.language_code)
        data["locale"] = locale
        data["t"] = self.i18n.translator(locale)
        return await handler(event, data)
