"""The send path (bot.telegram.flood) with real aiogram Bots, a real redis-server and the local Bot API
server: pace per private chat, per group and for the bot, retry_after holding the whole chat, several
replicas sharing one chat's budget, cheap calls merging and giving way, and Redis going away.

Times are the server's arrival times of the calls; only lower bounds are asserted (how far apart
calls must be), never how fast anything is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from bot.telegram.flood import CallSkipped, ChatLimiter, FloodState, Pace, cheap, target_chat
from devkit.botapi import LocalBotAPI
from devkit.botapi.models import RecordedCall
from devkit.redis_server import free_port
from tests.bot.conftest import TOKEN

JITTER_S = 0.03
"""Clock and scheduling slack allowed under a lower bound (Redis' clock against the server's)."""
FAST = Pace(private_per_s=1000, group_per_min=60_000, global_per_s=1000, chat_burst=1)
"""A pace that never binds, for the tests of something else."""
USER = 7001


class _Session(AiohttpSession):
    async def close(self) -> None:  # plain HTTP: no TLS shutdown to wait for
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def api() -> AsyncIterator[LocalBotAPI]:
    async with LocalBotAPI(token=TOKEN) as server:
        for i in range(12):
            server.user(USER + i)
        yield server


@pytest.fixture
async def bots() -> AsyncIterator[list[tuple[Bot, ChatLimiter]]]:
    made: list[tuple[Bot, ChatLimiter]] = []
    yield made
    for bot, limiter in made:
        await limiter.close()
        await bot.session.close()


def make_bot(made: list[tuple[Bot, ChatLimiter]], api: LocalBotAPI, aredis: Redis | None,
             pace: Pace) -> tuple[Bot, ChatLimiter]:
    session = _Session(api=TelegramAPIServer.from_base(api.base_url))
    limiter = ChatLimiter(FloodState(aredis, pace))
    session.middleware(limiter)
    made.append((Bot(TOKEN, session=session), limiter))
    return made[-1]


def sent(api: LocalBotAPI, method: str = "sendMessage", chat_id: int | None = None) -> list[RecordedCall]:
    return [c for c in api.calls_to(method, chat_id=chat_id) if c.ok]


def gaps_at_least(times: list[float], interval: float, burst: int) -> None:
    """Call i (from 0) came no earlier than (i - burst + 1) intervals after the first."""
    for i, at in enumerate(times):
        assert at - times[0] >= max(0, i - burst + 1) * interval - JITTER_S, (i, at - times[0])


async def test_a_private_chat_gets_its_burst_then_one_message_per_interval_in_order(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    bot, _ = make_bot(bots, api, aredis, Pace(private_per_s=10, global_per_s=1000, chat_burst=2))
    await asyncio.gather(*(bot.send_message(USER, str(i)) for i in range(6)))
    calls = sent(api, chat_id=USER)
    assert [c.params["text"] for c in calls] == [str(i) for i in range(6)]
    gaps_at_least([c.time for c in calls], 0.1, burst=2)
    assert calls[-1].time - calls[0].time >= 0.4 - JITTER_S


async def test_a_group_is_paced_per_minute_and_a_private_chat_beside_it_is_not_held_back(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    group = api.group(-100123, "friends")
    bot, _ = make_bot(bots, api, aredis, Pace(private_per_s=1000, group_per_min=400, global_per_s=1000,
                                             chat_burst=1))
    group_task = asyncio.gather(*(bot.send_message(group.chat_id, f"g{i}") for i in range(4)))
    await asyncio.gather(*(bot.send_message(USER, f"p{i}") for i in range(4)))
    private_done = api.calls[-1].time
    await group_task
    group_calls = sent(api, chat_id=group.chat_id)
    gaps_at_least([c.time for c in group_calls], 60 / 400, burst=1)
    assert private_done < group_calls[-1].time  # the private chat went on while the group waited


async def test_the_bot_wide_pace_holds_over_all_chats(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    bot, _ = make_bot(bots, api, aredis, Pace(private_per_s=1000, global_per_s=20, chat_burst=5))
    await asyncio.gather(*(bot.send_message(USER + i, "bulk") for i in range(10)))
    times = sorted(c.time for c in sent(api))
    assert len(times) == 10
    gaps_at_least(times, 1 / 20, burst=1)


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "local"])
async def test_calls_that_wait_for_the_bot_wide_pace_take_their_turns_once(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]], shared: bool) -> None:
    bot, limiter = make_bot(bots, api, aredis if shared else None,
                            Pace(private_per_s=1000, global_per_s=20, chat_burst=5))
    turns = 0
    take_turn = limiter.state.take_turn

    async def counted(chat: int | str) -> tuple[float, bool]:
        nonlocal turns
        turns += 1
        return await take_turn(chat)

    limiter.state.take_turn = counted  # type: ignore[method-assign]
    await asyncio.gather(*(bot.send_message(USER + i, "bulk") for i in range(10)))
    times = sorted(c.time for c in sent(api))
    assert len(times) == 10
    gaps_at_least(times, 1 / 20, burst=1)
    # Each call asked once: nine took a later slot and slept until it, none woke to ask again.
    assert turns == 10


async def test_a_retry_after_that_comes_while_a_call_waits_for_its_turn_holds_it(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    bot, limiter = make_bot(bots, api, aredis, Pace(private_per_s=1000, global_per_s=2, chat_burst=5))
    await bot.send_message(USER, "first")  # the bot-wide slot for the next half second is gone
    second = asyncio.create_task(bot.send_message(USER + 1, "second"))
    await asyncio.sleep(0.1)  # it has taken the next slot and sleeps until it
    await limiter.state.hold(USER + 1, 1.0)
    await second
    first_at, second_at = (c.time for c in sent(api))
    assert second_at - first_at >= 1.0 + 0.1 - JITTER_S  # held, not sent at its slot
    assert api.early_retries == []


async def test_retry_after_holds_the_whole_chat_and_every_waiting_call_goes_after_it_in_order(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    bot, limiter = make_bot(bots, api, aredis, FAST)
    api.rate_limit(1, per_seconds=1.0, chat_id=USER)
    await asyncio.gather(*(bot.send_message(USER, str(i)) for i in range(3)))
    # A chat action while the chat is held is not worth a wait: skipped, nothing sent.
    await bot.send_message(USER, "3")
    await limiter.state.hold(USER, 1.0)  # as after the next 429
    with pytest.raises(CallSkipped):
        await bot.send_chat_action(USER, "upload_photo")
    assert [c.params["text"] for c in sent(api, chat_id=USER)] == ["0", "1", "2", "3"]
    assert api.early_retries == []
    assert api.calls_to("sendChatAction") == [] and limiter.skipped == 1
    assert api.flood.answers == len(api.flood.windows) >= 3  # each window met once, never inside it
    assert sent(api, chat_id=USER)[-1].time - sent(api, chat_id=USER)[0].time >= api.flood.held_s(USER) - 1.0


async def test_two_replicas_share_one_chat_s_pace_and_its_retry_after(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    pace = Pace(private_per_s=5, global_per_s=1000, chat_burst=1)
    one, _ = make_bot(bots, api, aredis, pace)
    two, _ = make_bot(bots, api, aredis, pace)
    await asyncio.gather(*(b.send_message(USER, f"{n}{i}") for i in range(3) for n, b in (("a", one),
                                                                                         ("b", two))))
    times = sorted(c.time for c in sent(api, chat_id=USER))
    gaps_at_least(times, 0.2, burst=1)  # one budget for the chat, not one per replica
    # Telegram holds the chat after replica one's call: replica two waits it out too.
    api.inject("sendMessage", error_code=429, retry_after=1, chat_id=USER + 1)
    first = asyncio.create_task(one.send_message(USER + 1, "from one"))
    await api.wait_for(lambda: bool(api.flood.windows and api.flood.windows[-1].chat_id == USER + 1))
    await two.send_message(USER + 1, "from two")
    await first
    window = api.flood.windows[-1]
    assert all(c.time >= window.end - 0.1 for c in sent(api, chat_id=USER + 1))
    assert api.early_retries == []


async def test_progress_edits_of_a_waiting_chat_merge_into_the_latest(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    bot, limiter = make_bot(bots, api, aredis, FAST)
    status = await bot.send_message(USER, "queued")
    await limiter.state.hold(USER, 1.0)  # as after a 429
    for step in range(5):
        with cheap(f"status:{status.message_id}"), pytest.raises(CallSkipped):
            await bot.edit_message_text(f"step {step}", chat_id=USER, message_id=status.message_id)
    assert limiter.merged == 4
    await api.wait_for(lambda: bool(api.calls_to("editMessageText")), timeout=5)
    await asyncio.sleep(0.3)
    assert [c.params["text"] for c in api.calls_to("editMessageText")] == ["step 4"]
    assert api.message(USER, status.message_id).text == "step 4"
    assert api.early_retries == []


async def test_cheap_calls_give_way_to_a_result_which_is_never_dropped(
        api: LocalBotAPI, aredis: Redis, bots: list[tuple[Bot, ChatLimiter]]) -> None:
    bot, limiter = make_bot(bots, api, aredis, FAST)
    status = await bot.send_message(USER, "queued")
    await limiter.state.hold(USER, 1.0)
    with cheap(f"status:{status.message_id}"), pytest.raises(CallSkipped):
        await bot.edit_message_text("step 1", chat_id=USER, message_id=status.message_id)
    result = asyncio.create_task(bot.send_message(USER, "the result"))
    await asyncio.sleep(0.1)
    # The result waits for the hold; a progress edit meanwhile is skipped at once, not queued behind it.
    with cheap(f"status:{status.message_id}"), pytest.raises(CallSkipped):
        await asyncio.wait_for(
            bot.edit_message_text("step 2", chat_id=USER, message_id=status.message_id), timeout=0.2)
    assert (await result).text == "the result"
    await asyncio.sleep(0.3)
    assert api.calls_to("editMessageText") == []  # the merged edit gave way to the result
    assert api.message(USER, status.message_id).text == "queued"
    assert api.early_retries == []


async def test_without_redis_the_replica_paces_on_its_own_state(
        api: LocalBotAPI, bots: list[tuple[Bot, ChatLimiter]], caplog: pytest.LogCaptureFixture) -> None:
    gone = Redis(port=free_port(), socket_connect_timeout=0.2, retry=None)
    caplog.set_level(logging.WARNING, logger="bot.telegram.flood")
    try:
        bot, _ = make_bot(bots, api, gone, Pace(private_per_s=10, global_per_s=1000, chat_burst=1))
        for i in range(3):
            await bot.send_message(USER, str(i))
    finally:
        await gone.aclose()
    gaps_at_least([c.time for c in sent(api, chat_id=USER)], 0.1, burst=1)
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per call


def test_which_calls_target_a_chat() -> None:
    from aiogram.methods import AnswerCallbackQuery, CreateNewStickerSet, GetChat, GetUpdates, SendMessage

    assert target_chat(SendMessage(chat_id=5, text="x")) == 5
    assert target_chat(SendMessage(chat_id="@channel", text="x")) == "@channel"
    assert target_chat(CreateNewStickerSet(user_id=9, name="p_by_b", title="t", stickers=[])) == 9
    assert target_chat(GetChat(chat_id=5)) is None
    assert target_chat(GetUpdates()) is None
    assert target_chat(AnswerCallbackQuery(callback_query_id="1")) is None


async def test_only_webhook_replicas_share_the_chat_state_through_redis(aredis: Redis) -> None:
    """Telegram hands updates to one getUpdates caller: a polling bot is alone and paces on its own."""
    from bot.app import create_bot
    from bot.config import BotSettings
    from bot.telegram.flood import limiter_of

    made = []
    for mode in ("polling", "webhook"):
        settings = BotSettings(BOT_TOKEN=TOKEN, BOT_MODE=mode, WEBHOOK_URL="https://bot.example/hook")
        bot = create_bot(settings, aredis)
        limiter = limiter_of(bot)
        assert limiter is not None
        made.append(limiter.state.redis)
        await bot.session.close()
    assert made == [None, aredis]
