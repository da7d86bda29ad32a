"""Session middleware: honour Telegram's 429 retry_after and ride out brief 5xx answers."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 60.0
"""Longest single wait we honour; Telegram asking for more means a flood ban, better surfaced."""
SERVER_ERROR_BACKOFF_S = 1.0
"""First wait after a 5xx; doubles per try. Telegram's 5xx are short hiccups."""
MAX_SERVER_ERROR_TRIES = 3
"""A 5xx that persists past this is an outage, not a hiccup."""
NETWORK_RETRY_WINDOW_S = 60.0
"""Resets, refused connections and timeouts are retried until the first of them is this old: a
flapping network or a restarting proxy loses nobody's answer; a minute of it means it is down."""
NETWORK_BACKOFF_CAP_S = 8.0
"""Longest pause between two tries after network errors (they double from SERVER_ERROR_BACKOFF_S)."""


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Wait exactly as long as Telegram says and retry, a bounded number of times.

    Flood control is per chat: after a 429 every other request to that chat (a progress edit,
    a chat action) waits out the same retry_after instead of hitting the limit again.
    """

    def __init__(self, max_tries: int = 5, network_window_s: float = NETWORK_RETRY_WINDOW_S) -> None:
        self.max_tries = max_tries
        self.network_window_s = network_window_s
        self._flood_until: dict[int | str, float] = {}

    async def _wait_flood(self, chat: int | str | None) -> None:
        if chat is None:
            return
        loop = asyncio.get_running_loop()
        while (until := self._flood_until.get(chat)) is not None:
            left = until - loop.time()
            if left <= 0:
                self._flood_until.pop(chat, None)
                return
            await asyncio.sleep(left)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        # Each kind of failure has its own budget: a network flap costs none of the 429 tries.
        flood_answers = 0
        server_errors = 0
        network_errors = 0
        first_network_error = 0.0
        chat: int | str | None = getattr(method, "chat_id", None)
        while True:
            await self._wait_flood(chat)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                flood_answers += 1
                if chat is not None:
                    loop = asyncio.get_running_loop()
                    until = loop.time() + min(exc.retry_after, MAX_RETRY_AFTER_S)
                    self._flood_until[chat] = max(until, self._flood_until.get(chat, 0.0))
                if flood_answers >= self.max_tries or exc.retry_after > MAX_RETRY_AFTER_S:
                    raise
                log.warning("telegram 429 on %s: waiting %ss (try %d/%d)",
                            type(method).__name__, exc.retry_after, flood_answers, self.max_tries)
                if chat is None:
                    await asyncio.sleep(exc.retry_after)
            except TelegramServerError:
                server_errors += 1
                if server_errors >= MAX_SERVER_ERROR_TRIES:
                    raise
                delay = SERVER_ERROR_BACKOFF_S * 2 ** (server_errors - 1)
                log.warning("telegram 5xx on %s: retrying in %.1fs", type(method).__name__, delay)
                await asyncio.sleep(delay)
            except TelegramNetworkError as exc:
                # A reset, a refused connection or a timeout: without a retry the answer is lost.
                loop = asyncio.get_running_loop()
                network_errors += 1
                if network_errors == 1:
                    first_network_error = loop.time()
                left = first_network_error + self.network_window_s - loop.time()
                if left <= 0:
                    raise
                delay = min(SERVER_ERROR_BACKOFF_S * 2 ** (network_errors - 1), NETWORK_BACKOFF_CAP_S, left)
                # Never the message: aiohttp's text can carry the request URL, which holds the token.
                log.warning("telegram unreachable on %s (%s): retrying in %.1fs", type(method).__name__,
                            type(exc.__cause__ or exc).__name__, delay)
                await asyncio.sleep(delay)
