"""The services under the routers, on real Redis and the local Bot API: sticker-pack rollover by count.

The admission gate's races and refusals are in tests/ops/test_admission.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from redis.asyncio import Redis

from bot.app import create_bot
from bot.config import BotSettings
from bot.services.packs import MAX_STICKERS_PER_PACK, PackService, seq_of
from devkit.botapi import LocalBotAPI
from tests.ops.conftest import sticker_images

USER = 901


@pytest.fixture
async def bot(api: LocalBotAPI) -> AsyncIterator[Bot]:
    settings = BotSettings.model_validate({
        "BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.base_url,
        # 120 sticker calls for one user: Telegram's pace of one a second would only add waiting.
        "BOT_PRIVATE_CHAT_RATE": 30, "BOT_CHAT_BURST": 20,
    })
    bot = create_bot(settings)
    yield bot
    await bot.session.close()


async def test_pack_rolls_over_when_the_record_says_full(api: LocalBotAPI, bot: Bot, aredis: Redis) -> None:
    api.user(USER)
    packs = PackService(aredis, api.bot_username)
    _, webp = sticker_images()
    for i in range(MAX_STICKERS_PER_PACK):
        outcome = await packs.add_sticker(bot, USER, webp, default_title="Mine")
        assert outcome.created == (i == 0)
    first = outcome.pack
    assert first.count == MAX_STICKERS_PER_PACK and first.places_left == 0
    adds_before = len(api.calls_to("addStickerToSet"))
    rolled = await packs.add_sticker(bot, USER, webp, default_title="Mine 2")
    assert rolled.created and rolled.pack.name != first.name and rolled.pack.title == "Mine 2"
    assert len(api.calls_to("addStickerToSet")) == adds_before  # the full pack was not even tried
    assert [p.name for p in await packs.packs(USER)] == [first.name, rolled.pack.name]
    assert len(api.sticker_sets[first.name].stickers) == MAX_STICKERS_PER_PACK


def test_pack_names_follow_telegram_rules() -> None:
    packs = PackService(Redis(), "kandinsky_test_bot")
    assert packs.pack_name(123, 4) == "k123n4_by_kandinsky_test_bot"
    assert seq_of(packs.pack_name(123, 4)) == 4 and seq_of("someone_elses_by_kandinsky_test_bot") == -1
    with pytest.raises(ValueError, match="no valid sticker set name"):
        PackService(Redis(), "b" * 60).pack_name(123456789, 1)
    with pytest.raises(ValueError, match="bot_username"):
        PackService(Redis(), "")
