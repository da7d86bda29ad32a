"""The middleware stack, set up in one place.

Order matters. At the update level, after aiogram's own: the update read
(:class:`UpdateReadMiddleware`, in place of aiogram's FSM middleware) takes the chat's lock and in
one Redis call reads the dialog, the user's settings and the ban check, and records the user.
For messages and callback queries: the i18n middleware (``t`` and ``locale`` for every later
middleware and handler), then the quota middleware (it stops banned users, in their language).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import BaseMiddleware, Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.fsm.storage.redis import RedisStorage

from bot.middlewares.i18n import I18nMiddleware
from bot.middlewares.quota import QuotaMiddleware
from bot.middlewares.update_read import ReadDialog, UpdateReadMiddleware
from bot.services import Services

__all__ = ["I18nMiddleware", "QuotaMiddleware", "ReadDialog", "UpdateReadMiddleware", "setup_middlewares"]


def setup_middlewares(dp: Dispatcher, services: Services, storage: RedisStorage,
                      isolation: BaseEventIsolation, *, extra: Sequence[BaseMiddleware] = ()) -> None:
    """Install the middlewares on a dispatcher made with ``disable_fsm=True`` (the update read is its
    FSM middleware); ``extra`` ones run after the bot's own, in the given order."""
    dp.fsm = UpdateReadMiddleware(storage, isolation, services.redis)
    dp.update.outer_middleware(dp.fsm)
    stack: list[BaseMiddleware] = [I18nMiddleware(services.i18n),
                                   QuotaMiddleware(services.quotas, services.redis), *extra]
    for observer in (dp.message, dp.callback_query):
        for middleware in stack:
            observer.outer_middleware(middleware)
