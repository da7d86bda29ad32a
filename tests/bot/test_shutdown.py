"""Stopping the bot lets the updates it is handling finish: their offsets are already confirmed."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

import bot.app
from bot.app import run_bot
from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer
from tests.bot.conftest import BOT_START_TIMEOUT_S, make_settings

HANDLER_S = 3.0
"""Longer than the bot's own stop (its event consumer's 1 s read), so only a drain waits it out."""


def slow_router(started: asyncio.Event, seconds: float) -> Router:
    router = Router(name="slow")

    @router.message(Command("slow"))
    async def slow(message: Message, state: FSMContext) -> None:
        started.set()
        await asyncio.sleep(seconds)
        await state.update_data(finished=True)  # the FSM storage is still open
        await message.answer("done slowly")

    return router


async def _stop_mid_update(botapi: LocalBotAPI, redis_url: str, seconds: float) -> tuple[int, float]:
    """Send /slow, stop the bot while it runs; (replies when run_bot returned, seconds it took)."""
    started = asyncio.Event()
    settings = make_settings(botapi, redis_url)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop, extra_routers=[slow_router(started, seconds)]))
    try:
        await botapi.wait_for(lambda: task.done() or len(botapi.commands) >= 2, timeout=BOT_START_TIMEOUT_S)
        user = botapi.user(9_300_001)
        await user.send_text("/slow")
        await asyncio.wait_for(started.wait(), timeout=BOT_START_TIMEOUT_S)
        stop.set()
        loop = asyncio.get_running_loop()
        stopping = loop.time()
        await asyncio.wait_for(task, timeout=30)
        took = loop.time() - stopping
        replies = [m for m in botapi.messages_to(user.chat_id) if m.text == "done slowly"]
        return len(replies), took
    finally:
        stop.set()
        if not task.done():
            task.cancel()


async def test_an_update_being_handled_finishes_before_the_bot_stops(botapi: LocalBotAPI,
                                                                    bot_redis: RedisServer) -> None:
    replies, took = await _stop_mid_update(botapi, bot_redis.url, HANDLER_S)
    assert replies == 1
    assert took >= HANDLER_S / 2  # it did wait for the handler


async def test_an_update_that_outlasts_the_drain_is_left_with_a_warning(
        botapi: LocalBotAPI, bot_redis: RedisServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bot.app, "SHUTDOWN_DRAIN_S", 0.3)
    with caplog.at_level(logging.WARNING, logger="bot.infra.draining"):
        replies, took = await _stop_mid_update(botapi, bot_redis.url, 20.0)
    assert replies == 0 and took < 10
    assert "1 update(s) still being handled" in caplog.text
