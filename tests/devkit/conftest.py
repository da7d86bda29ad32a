"""The devkit tests' local Bot API server and a real aiogram Bot talking to it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from devkit.botapi import LocalBotAPI

EVENT_TIMEOUT_S = 10.0
"""Every round trip here takes milliseconds; ten seconds means it is lost."""
POLL_TIMEOUT_S = 1
"""Short long-polling so stopping the dispatcher at the end of a test is quick."""


class PlainHttpSession(AiohttpSession):
    """aiogram's session; closing skips the 250 ms wait meant for TLS shutdown (plain HTTP here)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def api() -> AsyncIterator[LocalBotAPI]:
    async with LocalBotAPI() as server:
        yield server


@pytest.fixture
async def bot(api: LocalBotAPI) -> AsyncIterator[Bot]:
    session = PlainHttpSession(api=TelegramAPIServer.from_base(api.base_url))
    bot = Bot(token=api.token, session=session)
    yield bot
    await bot.session.close()
