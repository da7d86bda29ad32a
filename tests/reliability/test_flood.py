"""The flood profile (issue 17): Telegram's flood control on the local Bot API server, a chat limited
to two messages per ten seconds plus a bot-wide limit, and three /imagine requests sent to that chat at
once, through the real bot at its real pace (bot/config.py defaults, not the fast pace the other
harnesses set) and the real workers on the tiny bundle.

Figures, printed with the suite's summary: calls made inside a retry_after window (the server counts
them: ``early_retries``), results delivered, the time from the requests to the last result against the
sum of the waits Telegram imposed on the chat (``FloodControl.held_s``)."""

from __future__ import annotations

import asyncio
import time

from bot.config import BotSettings
from bot.services.user_settings import SettingsStore, UserSettings
from contract.spec import exact_size
from devkit.botapi import LocalBotAPI
from devkit.botapi.models import SentMessage
from tests.bot.images import open_image
from tests.reliability.conftest import RELAXED_LIMITS, Tally, Workers, account, job_of, rel_harness

REQUESTS = 3
CHAT_LIMIT = (2, 10.0)
"""Two messages per ten seconds to the chat: the busy group chat of the issue's report."""
BOT_LIMIT = (30, 1.0)
"""Telegram's bulk limit, about thirty messages a second over all chats."""
PACE = {alias: BotSettings.model_fields[name].default for name, alias in (
    ("private_chat_rate", "BOT_PRIVATE_CHAT_RATE"), ("group_chat_rate", "BOT_GROUP_CHAT_RATE"),
    ("global_rate", "BOT_GLOBAL_RATE"), ("chat_burst", "BOT_CHAT_BURST"),
    ("progress_edit_interval_s", "BOT_PROGRESS_EDIT_INTERVAL"))}
"""The bot's own pace as deployed: the test harness's fast pace would hide what the limiter does."""
WORK_MARGIN_S = 20.0
"""Time beyond the imposed waits the delivery may take: three 2-step tiny jobs on two shared cores
(a few seconds each), the bot's own pacing gaps and the events stream's polling."""
DELIVERY_TIMEOUT_S = 120
ASPECT = "16:9"
"""The cheapest bucket at the 512 tier (512x320), delivered at exactly 16:9."""


async def test_three_requests_to_a_chat_limited_to_two_messages_per_ten_seconds(
        botapi: LocalBotAPI, clean_redis: str, workers: Workers, tally: Tally) -> None:
    async with rel_harness(botapi, clean_redis, **RELAXED_LIMITS, **PACE) as h:
        user = h.user()
        await SettingsStore(h.redis).save(user.user_id, UserSettings(aspect=ASPECT))
        botapi.rate_limit(CHAT_LIMIT[0], per_seconds=CHAT_LIMIT[1], chat_id=user.chat_id)
        botapi.global_rate_limit(BOT_LIMIT[0], per_seconds=BOT_LIMIT[1])
        started = time.monotonic()
        await asyncio.gather(*(user.send_text(f"/imagine a lighthouse in a storm {i}")
                               for i in range(REQUESTS)))

        def results() -> int:
            return len(result_messages())

        def result_messages() -> list[SentMessage]:
            return [m for m in botapi.messages_to(user.chat_id)
                    if m.from_bot and m.kind == "photo" and not m.deleted and job_of(m) is not None]

        await botapi.wait_for(lambda: results() >= REQUESTS, timeout=DELIVERY_TIMEOUT_S)
        delivered_s = time.monotonic() - started
        held_s = botapi.flood.held_s(user.chat_id, start=started)
        windows = [w for w in botapi.flood.windows if w.chat_id == user.chat_id]
        early = list(botapi.early_retries)
        figures = (f"flood: {REQUESTS} requests to a chat limited to {CHAT_LIMIT[0]} messages / "
                   f"{CHAT_LIMIT[1]:g} s (bot-wide {BOT_LIMIT[0]} / {BOT_LIMIT[1]:g} s), real pace: "
                   f"{results()} results delivered in {delivered_s:.1f} s, {len(windows)} retry_after "
                   f"windows imposed holding the chat {held_s:.1f} s, calls inside a window {len(early)}, "
                   f"429 answers {botapi.flood.answers}, delivery beyond the waits "
                   f"{delivered_s - held_s:.1f} s (margin {WORK_MARGIN_S:g} s)")
        print(figures)
        tally.figures.append(figures)
        done = await account(h, [user], tally)
        assert done.accepted == REQUESTS and done.answered == REQUESTS
        assert early == [], early
        assert {open_image(m.photo_bytes or b"").size for m in result_messages()} == {exact_size(ASPECT, 512)}
        assert delivered_s <= held_s + WORK_MARGIN_S, figures
