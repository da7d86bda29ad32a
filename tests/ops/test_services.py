"""The services under the routers, on real Redis and the local Bot API: races, rollover by count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from redis.asyncio import Redis

from bot.app import create_bot
from bot.config import BotSettings
from bot.middlewares.quota import GuardedQueue, QuotaRefused
from bot.queue import QueueSettings, TooManyJobs
from bot.services.packs import MAX_STICKERS_PER_PACK, PackService, seq_of
from bot.services.quotas import Limits, QuotaService, Verdict
from contract import keys
from contract.spec import JobSpec, Mode
from devkit.botapi import LocalBotAPI
from tests.ops.conftest import sticker_images

USER = 901


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def bot(api: LocalBotAPI) -> AsyncIterator[Bot]:
    settings = BotSettings.model_validate({"BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.base_url})
    bot = create_bot(settings)
    yield bot
    await bot.session.close()


async def test_concurrent_requests_on_two_replicas_never_exceed_the_limit(aredis: Redis,
                                                                         redis_url: str) -> None:
    other = Redis.from_url(redis_url)
    try:
        limits = Limits(per_minute=5, per_day=100, inflight=100)
        replicas = [QuotaService(aredis, frozenset(), limits), QuotaService(other, frozenset(), limits)]
        decisions = await asyncio.gather(*(replicas[i % 2].admit(USER) for i in range(20)))
    finally:
        await other.aclose()
    assert sum(d.allowed for d in decisions) == 5
    assert {d.verdict for d in decisions if not d.allowed} == {Verdict.PER_MINUTE}
    assert await aredis.zcard(keys.quota_minute(USER)) == 5


async def test_sliding_window_frees_a_slot_after_a_minute(aredis: Redis) -> None:
    quotas = QuotaService(aredis, frozenset(), Limits(per_minute=2, per_day=100, inflight=100))
    t0 = 1_800_000_000.0
    assert (await quotas.admit(USER, now=t0)).allowed
    assert (await quotas.admit(USER, now=t0 + 30)).allowed
    refused = await quotas.admit(USER, now=t0 + 59)
    assert refused.verdict is Verdict.PER_MINUTE and refused.retry_at == pytest.approx(t0 + 60)
    assert (await quotas.admit(USER, now=t0 + 60.5)).allowed


async def test_admit_checks_ban_maintenance_and_custom_limits_in_the_script(
    aredis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    admin = 902
    quotas = QuotaService(aredis, frozenset({admin}), Limits(per_minute=2, per_day=100, inflight=100))
    t0 = 1_800_000_000.0
    await quotas.ban(USER)
    assert (await quotas.admit(USER, now=t0)).verdict is Verdict.BANNED
    assert await quotas.seen(USER) is True and await quotas.seen(admin) is False
    await quotas.unban(USER)
    await quotas.set_maintenance(True, by=admin)
    assert (await quotas.admit(USER, now=t0)).verdict is Verdict.MAINTENANCE
    await quotas.ban(admin)
    assert (await quotas.admit(admin, now=t0)).allowed  # admins are exempt from all of it
    await quotas.set_maintenance(False)
    assert await quotas.usage(USER, now=t0) == (0, 0, 0)  # refusals counted nothing

    await quotas.set_limits(USER, Limits(per_minute=1, per_day=100, inflight=100))
    first = await quotas.admit(USER, now=t0)
    assert first.allowed and first.limits == Limits(per_minute=1, per_day=100, inflight=100)
    refused = await quotas.admit(USER, now=t0 + 1)
    assert refused.verdict is Verdict.PER_MINUTE and refused.limits is not None
    assert refused.limits.per_minute == 1

    await quotas.set_limits(USER, Limits(per_minute=3, per_day=100, inflight=100))  # an admin's change
    assert (await quotas.admit(USER, now=t0 + 2)).allowed
    await quotas.reset_limits(USER)  # back to the defaults: 2 a minute, both used
    assert (await quotas.admit(USER, now=t0 + 3)).verdict is Verdict.PER_MINUTE

    other = USER + 2  # neither USER nor the admin
    await aredis.set(keys.quota_limits(other), '{"per_minute": "lots"}')
    with caplog.at_level("WARNING", logger="bot.services.quotas"):
        granted = await quotas.admit(other, now=t0)
    assert granted.allowed and granted.limits == quotas.default_limits
    assert "unreadable custom limits" in caplog.text
    assert (await quotas.admit(other, now=t0 + 1)).allowed
    assert (await quotas.admit(other, now=t0 + 2)).verdict is Verdict.PER_MINUTE  # the defaults apply


async def test_slot_is_refunded_when_the_queue_refuses(aredis: Redis) -> None:
    quotas = QuotaService(aredis, frozenset(), Limits(per_minute=10, per_day=100, inflight=100))
    queue = GuardedQueue(aredis, QueueSettings(per_user_inflight=1), quotas=quotas)
    try:
        spec = JobSpec(mode=Mode.TEXT2IMAGE, prompt="x", width=512, height=512, user_id=USER, chat_id=USER)
        await queue.submit(spec)
        with pytest.raises(TooManyJobs):
            await queue.submit(JobSpec(mode=Mode.TEXT2IMAGE, prompt="y", width=512, height=512, user_id=USER,
                                       chat_id=USER))
        assert await quotas.usage(USER) == (1, 1, 1)
        await quotas.ban(USER)
        with pytest.raises(QuotaRefused) as refused:
            await queue.submit(JobSpec(mode=Mode.TEXT2IMAGE, prompt="z", width=512, height=512,
                                       user_id=USER, chat_id=USER))
        assert refused.value.decision.verdict is Verdict.BANNED
        assert await quotas.usage(USER) == (1, 1, 1)
    finally:
        await queue.close()


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
