"""The update read: one Redis call per update brings the dialog, the settings and the ban check.

A real Dispatcher on a real redis-server; its Bot never calls Telegram (no handler here answers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from aiogram import Bot, Dispatcher
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import Update
from redis.asyncio import Redis

from bot.infra.isolation import OrderedEventIsolation
from bot.middlewares import ReadDialog, UpdateReadMiddleware
from bot.middlewares.update_read import BANNED, USER_SETTINGS
from bot.services.jobs import StatusRef, load_status, save_status
from bot.services.user_settings import UserSettings
from contract import keys

USER = 4242
BOT_ID = 1


def message(update_id: int, text: str = "hello") -> Update:
    return Update.model_validate({"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": text,
        "chat": {"id": USER, "type": "private"}, "from": {"id": USER, "is_bot": False, "first_name": "U"}}})


def blocked_the_bot(update_id: int) -> Update:
    member = {"user": {"id": BOT_ID, "is_bot": True, "first_name": "B"}}
    return Update.model_validate({"update_id": update_id, "my_chat_member": {
        "chat": {"id": USER, "type": "private"}, "from": {"id": USER, "is_bot": False, "first_name": "U"},
        "date": 0, "old_chat_member": {**member, "status": "member"},
        "new_chat_member": {**member, "status": "kicked", "until_date": 0}}})


class Seen:
    """The data each handler call got."""

    def __init__(self) -> None:
        self.data: list[dict[str, Any]] = []


@pytest.fixture
async def wired(redis_url: str) -> AsyncIterator[tuple[Dispatcher, Bot, Redis, Seen]]:
    client = Redis.from_url(redis_url)
    builder = DefaultKeyBuilder(prefix=keys.FSM_PREFIX)
    storage = RedisStorage(client, key_builder=builder)
    dp = Dispatcher(storage=storage, disable_fsm=True)
    dp.fsm = UpdateReadMiddleware(storage, OrderedEventIsolation(None), client)
    dp.update.outer_middleware(dp.fsm)
    seen = Seen()

    async def keep(event: Any, **data: Any) -> None:
        seen.data.append(data)

    dp.message.register(keep)
    dp.my_chat_member.register(keep)
    bot = Bot(f"{BOT_ID}:test-token")
    try:
        yield dp, bot, client, seen
    finally:
        await bot.session.close()
        await client.aclose()


def commands(sync: redis.Redis) -> int:
    return sum(int(v["calls"]) for v in sync.info("commandstats").values())  # type: ignore[union-attr]


async def test_one_call_brings_the_dialog_the_settings_and_the_ban(
        wired: tuple[Dispatcher, Bot, Redis, Seen], redis_client: redis.Redis) -> None:
    dp, bot, client, seen = wired
    redis_client.set(keys.user_settings(USER), UserSettings(aspect="16:9").model_dump_json())
    redis_client.set(keys.blocked(USER), "1")
    redis_client.sadd(keys.BANNED, str(USER))
    await dp.feed_update(bot, message(1))  # loads the script
    await client.set(f"{keys.FSM_PREFIX}:{USER}:{USER}:state", "Imagine:prompt")
    redis_client.set(keys.blocked(USER), "1")
    redis_client.config_resetstat()
    await dp.feed_update(bot, message(2))
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1  # the one round trip (the rest ran inside the script)
    assert "cmdstat_get" in stats  # the script's own reads
    data = seen.data[-1]
    assert data["raw_state"] == "Imagine:prompt" and isinstance(data["state"], ReadDialog)
    assert data[USER_SETTINGS].aspect == "16:9" and data[BANNED] is True
    # Writing to the bot records the user and clears the "blocked us" mark.
    assert redis_client.sismember(keys.USERS, str(USER)) and not redis_client.exists(keys.blocked(USER))
    assert redis_client.ttl(keys.user_settings(USER)) > 0  # each read renews the settings


async def test_a_block_update_is_not_the_user_writing(
        wired: tuple[Dispatcher, Bot, Redis, Seen], redis_client: redis.Redis) -> None:
    dp, bot, _, seen = wired
    redis_client.set(keys.blocked(USER), "1")
    await dp.feed_update(bot, blocked_the_bot(1))
    assert redis_client.exists(keys.blocked(USER)) and not redis_client.sismember(keys.USERS, str(USER))
    assert seen.data[-1][BANNED] is False and seen.data[-1][USER_SETTINGS] == UserSettings()


async def test_clearing_an_empty_dialog_costs_nothing_and_a_full_one_one_call(
        wired: tuple[Dispatcher, Bot, Redis, Seen], redis_client: redis.Redis) -> None:
    dp, bot, client, seen = wired
    await dp.feed_update(bot, message(1))
    dialog: FSMContext = seen.data[-1]["state"]
    before = commands(redis_client)
    await dialog.clear()
    assert commands(redis_client) == before + 1  # INFO itself: nothing else ran
    await dialog.update_data(photos=["a"])  # no longer empty: a later clear must delete it
    await dialog.set_state("Mix:collect")
    await dialog.clear()
    assert await dialog.get_state() is None and await dialog.get_data() == {}
    # A dialog with data but no state is not empty either (the next update finds it).
    await client.set(f"{keys.FSM_PREFIX}:{USER}:{USER}:data", '{"photos": ["b"]}')
    await dp.feed_update(bot, message(2))
    again: ReadDialog = seen.data[-1]["state"]
    assert seen.data[-1]["raw_state"] is None and again.empty is False
    await again.clear()
    assert not redis_client.exists(f"{keys.FSM_PREFIX}:{USER}:{USER}:data")


async def test_webhook_replicas_share_the_chat_lock_and_a_polling_bot_takes_none(
        redis_url: str, redis_client: redis.Redis) -> None:
    client = Redis.from_url(redis_url)
    try:
        key = StorageKey(bot_id=BOT_ID, chat_id=USER, user_id=USER)
        shared = OrderedEventIsolation(RedisEventIsolation(client, key_builder=DefaultKeyBuilder(prefix="t")))
        async with shared.lock(key):
            assert [k.decode() for k in redis_client.keys("t:*")] == [f"t:{USER}:{USER}:lock"]
        alone = OrderedEventIsolation(None)
        redis_client.config_resetstat()
        async with alone.lock(key):
            pass
        assert "cmdstat_set" not in redis_client.info("commandstats")
        await alone.close()
    finally:
        await client.aclose()


async def test_a_status_saved_by_an_older_bot_is_still_read(
        redis_url: str, redis_client: redis.Redis) -> None:
    client = Redis.from_url(redis_url)
    try:
        redis_client.hset(keys.status("old"), mapping={"chat_id": USER, "message_id": 7, "photo": 1})
        assert await load_status(client, "old") == StatusRef(USER, 7, True)
        await save_status(client, "new", USER, 8)
        assert await load_status(client, "new") == StatusRef(USER, 8, False)
        assert await load_status(client, "missing") is None
        assert 0 < redis_client.ttl(keys.status("new")) <= keys.STATUS_TTL
    finally:
        await client.aclose()
