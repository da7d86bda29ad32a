"""The middleware stack, set up in one place.

Order matters: the i18n middleware runs first (outer), so every later middleware and handler
receives ``t`` (a Translator), ``locale`` and ``user_settings``; the quota middleware next
(it stops banned users and answers them in their language; the i18n middleware's one round trip
has recorded the user and checked the ban for it).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import BaseMiddleware, Dispatcher

from bot.middlewares.i18n import I18nMiddleware
from bot.middlewares.quota import QuotaMiddleware
from bot.services import Services

__all__ = ["I18nMiddleware", "QuotaMiddleware", "setup_middlewares"]


def setup_middlewares(dp: Dispatcher, services: Services, *, extra: Sequence[BaseMiddleware] = ()) -> None:
    """Install the update middlewares; ``extra`` ones run after the bot's own, in the given order."""
    stack: list[BaseMiddleware] = [I18nMiddleware(services.i18n, services.store, services.quotas),
                                   QuotaMiddleware(services.quotas, services.redis), *extra]
    for observer in (dp.message, dp.callback_query):
        for middleware in stack:
            observer.outer_middleware(middleware)
