"""Puts the user's translator and settings into every handler's data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.services.user_settings import SettingsStore
from bot.ui.i18n import I18n


class I18nMiddleware(BaseMiddleware):
    """Locale = the one chosen in /settings, else the user's Telegram language, else the default."""

    def __init__(self, i18n: I18n, store: SettingsStore) -> None:
        self.i18n = i18n
        self.store = store

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
            # A user who writes to us has (again) not blocked the bot: the mark goes in the same trip.
            settings = await self.store.on_update(user.id)
            data["user_settings"] = settings
            locale = settings.locale or self.i18n.pick(user.language_code)
        data["locale"] = locale
        data["t"] = self.i18n.translator(locale)
        return await handler(event, data)
