"""Puts the user's translator into every handler's data."""

from __future__ import annotations

from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from bot.middlewares.types import NextHandler
from bot.middlewares.update_read import USER_SETTINGS
from bot.services.user_settings import UserSettings
from bot.ui.i18n import I18n


class I18nMiddleware(BaseMiddleware):
    """Locale = the one chosen in /settings, else the user's Telegram language, else the default.
    The settings come from the update's one read (bot.middlewares.update_read)."""

    def __init__(self, i18n: I18n) -> None:
        self.i18n = i18n

    async def __call__(self, handler: NextHandler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        settings: UserSettings | None = data.get(USER_SETTINGS)
        if user is None:
            locale = self.i18n.default_locale
        else:
            if settings is None:  # an update the read skipped: the defaults
                settings = data[USER_SETTINGS] = UserSettings()
            locale = settings.locale or self.i18n.pick(user.language_code)
        data["locale"] = locale
        data["t"] = self.i18n.translator(locale)
        return await handler(event, data)
