"""The session's retry policy for network errors, against a real port: refused while nothing listens,
answered once the local Bot API server comes up there."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError

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
