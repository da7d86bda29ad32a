"""The middleware stack, set up in one place so later features (quotas, bans) can add theirs.

Order matters: the i18n middleware runs first (outer), so every later middleware and handler
receives ``t`` (a Translator), ``locale`` and ``user_settings``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import BaseMiddleware, Dispatcher

from bot.i18n import I18n
from bot.middlewares.i18n import I18nMiddleware
from bot.middlewares.retry import RetryAfterMiddleware
from bot.user_settings import SettingsStore

__all__ = ["I18nMiddleware", "RetryAfterMiddleware", "setup_middlewares"]


def setup_middlewares(dp: Dispatcher, *, i18n: I18n, store: SettingsStore,
                      extra: Sequence[BaseMiddleware] = ()) -> None:
    """Install the update middlewares; ``extra`` ones run after i18n, in the given order."""
    i18n_mw = I18nMiddleware(i18n, store)
    for observer in (dp.message, dp.callback_query):
        observer.outer_middleware(i18n_mw)
        for middleware in extra:
            observer.outer_middleware(middleware)
