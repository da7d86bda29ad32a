"""The session's retry policy for network errors, against a real port: refused while nothing listens,
answered once the local Bot API server comes up there."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.app import RedactingSession
from bot.telegram.flood import ChatLimiter, FloodState, Pace
from devkit.botapi import LocalBotAPI
from devkit.redis_server import free_port
from tests.bot.conftest import TOKEN

WINDOW_S = 1.5
"""The test's retry window (a minute in production)."""


def make_bot(port: int, window_s: float) -> Bot:
    session = RedactingSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{port}"), timeout=5)
    session.middleware(ChatLimiter(FloodState(None, Pace()), network_window_s=window_s))
    return Bot(token=TOKEN, session=session)


async def test_network_errors_are_retried_for_the_window_then_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    bot = make_bot(free_port(), WINDOW_S)
    caplog.set_level(logging.WARNING, logger="bot.telegram.flood")
    started = time.monotonic()
    try:
        with pytest.raises(TelegramNetworkError):
            await bot.get_me()
    finally:
        await bot.session.close()
    elapsed = time.monotonic() - started
    retries = [r for r in caplog.records if "telegram unreachable" in r.getMessage()]
    assert len(retries) >= 2, "a refused connection is retried, not given up at once"
    assert WINDOW_S - 0.1 <= elapsed < WINDOW_S + 3, elapsed
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_a_call_made_while_the_server_is_down_succeeds_once_it_is_back() -> None:
    port = free_port()
    bot = make_bot(port, 30.0)
    try:
        call = asyncio.create_task(bot.get_me())
        await asyncio.sleep(1.2)  # two refused tries at least
        assert not call.done()
        async with LocalBotAPI(token=TOKEN, port=port):
            me = await asyncio.wait_for(call, timeout=15)
        assert me.is_bot
    finally:
        await bot.session.close()


class CancelBecomesNetworkError(BaseRequestMiddleware):
    """Between the send path and the HTTP client: reports a cancel as the connection's close, as an
    HTTP client does when the cancel lands while it tears the connection down."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        self.calls += 1
        try:
            return await make_request(bot, method)
        except asyncio.CancelledError:
            raise TelegramNetworkError(method=method, message="ServerDisconnectedError") from None


async def test_a_cancelled_long_poll_stops_even_when_the_client_reports_a_network_error() -> None:
    async with LocalBotAPI(token=TOKEN) as api:
        bot = make_bot(api.port, 30.0)
        converter = CancelBecomesNetworkError()
        bot.session.middleware(converter)  # inside the send path: the limiter sees what it reports
        try:
            poll = asyncio.create_task(bot.get_updates(timeout=5))
            await api.wait_for(lambda: converter.calls == 1, 5)
            await asyncio.sleep(0.2)  # the server holds the long poll
            poll.cancel()
            done, _ = await asyncio.wait({poll}, timeout=3)
            assert done, "the cancel was taken for a network error and the poll retried"
            assert poll.cancelled()
            assert converter.calls == 1
        finally:
            await bot.session.close()
