"""Rate limits shared by two bot replicas, bans and maintenance mode, through the real handlers."""

from __future__ import annotations

import re
import time

import redis as redis_sync

from bot.services.quotas import utc_day
from contract import keys
from contract.queue import DEFAULT_QUEUE, HIGH_QUEUE
from devkit.botapi import LocalBotAPI
from tests.ops.conftest import (
    ADMIN_ID,
    EVENT_TIMEOUT_S,
    Pump,
    delivered_sticker,
    finish_sticker_job,
    last_text,
)

USER = 701


def _queued(sync: redis_sync.Redis, queue: str = DEFAULT_QUEUE) -> int:
    return int(sync.llen(f"rq:queue:{queue}"))


async def _say(api: LocalBotAPI, pump: Pump, user_id: int, text: str) -> str:
    """Send a message and return the bot's newest text in that chat once it was handled."""
    before = len(api.messages_to(user_id))
    await api.user(user_id).send_text(text)
    await pump.idle()
    await api.wait_for(lambda: len(api.messages_to(user_id)) > before, EVENT_TIMEOUT_S)
    return last_text(api, user_id)


def await_state(sync: redis_sync.Redis, user_id: int) -> bool:
    """Whether the user has any FSM state (a dialog the press would have opened)."""
    return bool(sync.keys(f"kb:fsm:*{user_id}*:state"))


async def test_per_minute_limit_is_shared_by_two_replicas(api, start_replicas, sync_redis) -> None:
    replicas, pump = await start_replicas(2, rate_per_minute=3, max_inflight=10)
    answers = [await _say(api, pump, USER, f"a red fox number {i}") for i in range(5)]
    # Both replicas handled requests: the count lives in Redis, not in a replica.
    assert {name for _, name in pump.handled} == {"bot-1", "bot-2"}
    assert _queued(sync_redis) == 3
    for refused in answers[3:]:
        match = re.fullmatch(r"⏳ Too many requests: 3 per minute\. Next free slot at (\d\d:\d\d:\d\d) UTC "
                             r"\(in (\d+) s\)\.", refused)
        assert match, refused
        assert 1 <= int(match.group(2)) <= 60
    assert all("Too many requests" not in a for a in answers[:3])
    # Refusals are not counted: today's counter holds the three queued requests only.
    assert sync_redis.get(keys.quota_day(USER, utc_day(time.time()))) == b"3"
    # Admins are exempt.
    api.user(ADMIN_ID)
    for i in range(4):
        await _say(api, pump, ADMIN_ID, f"admin picture {i}")
    assert _queued(sync_redis, HIGH_QUEUE) == 4
    counted = [r.services.metrics.registry.get_sample_value("kb_bot_requests_refused_total",
                                                       {"reason": "per_minute"}) for r in replicas]
    assert sum(v or 0.0 for v in counted) == 2


async def test_per_day_and_in_flight_limits(api, start_replicas, sync_redis) -> None:
    _, pump = await start_replicas(2, rate_per_minute=100, rate_per_day=3, max_inflight=2)
    assert "Too many" not in await _say(api, pump, USER, "first")
    assert "Too many" not in await _say(api, pump, USER, "second")
    inflight = await _say(api, pump, USER, "third")
    assert inflight == ("⏳ You already have 2 jobs in progress. "
                        "Send the next request when one of them is done.")
    assert _queued(sync_redis) == 2
    # One job ends (the worker's DONE): a slot frees up; then the day's third request is the last.
    job_ids = [j.decode() for j in sync_redis.smembers(f"kb:inflight:{USER}")]
    sync_redis.srem(f"kb:inflight:{USER}", job_ids[0])
    assert "You already have" not in await _say(api, pump, USER, "third again")
    sync_redis.delete(f"kb:inflight:{USER}")
    day = await _say(api, pump, USER, "fourth")
    assert re.fullmatch(r"⏳ You have used all 3 requests for today\. Next free slot at 00:00:00 UTC\.",
                        day), day
    assert _queued(sync_redis) == 3


async def test_custom_limits_set_by_admin_apply(api, start_replicas, sync_redis) -> None:
    _, pump = await start_replicas(1, rate_per_minute=100, max_inflight=10)
    api.user(ADMIN_ID)
    assert (await _say(api, pump, ADMIN_ID, f"/limits {USER} 1 100 10")).startswith(f"User {USER}: 1/min")
    assert "Too many" not in await _say(api, pump, USER, "one")
    assert "Too many requests: 1 per minute" in await _say(api, pump, USER, "two")
    assert _queued(sync_redis) == 1


async def test_banned_user_gets_one_short_message_and_nothing_is_queued(api, start_replicas,
                                                                        sync_redis) -> None:
    _, pump = await start_replicas(1)
    admin = api.user(ADMIN_ID)
    user = api.user(USER)
    await user.send_text("/start")
    await pump.idle()
    menu = api.messages_to(USER)[-1]
    assert menu.inline_buttons
    await admin.send_text(f"/ban {USER}")
    await pump.idle()
    assert await _say(api, pump, USER, "a cat") == "You cannot use this bot."
    sent = len(api.messages_to(USER))
    await user.send_text("/sticker a dog")
    await user.send_text("/start")
    await pump.idle()
    assert len(api.messages_to(USER)) == sent  # one short message, not one per update
    assert _queued(sync_redis) == 0 and not sync_redis.exists(f"kb:inflight:{USER}")
    # A button press gets the same short answer as an alert, and does nothing else.
    query_id = await user.press(menu, button_text="🎨 Text to image")
    await pump.idle()
    assert api.callback_queries[query_id].answer_text == "You cannot use this bot."
    assert len(api.messages_to(USER)) == sent and not await_state(sync_redis, USER)
    await admin.send_text(f"/unban {USER}")
    await pump.idle()
    assert "cannot use" not in await _say(api, pump, USER, "a cat again")
    assert _queued(sync_redis) == 1


async def test_maintenance_mode(api, start_replicas, sync_redis) -> None:
    _, pump = await start_replicas(1)
    admin = api.user(ADMIN_ID)
    api.user(USER)
    assert (await _say(api, pump, ADMIN_ID, "/maintenance on")).startswith("Maintenance mode is ON")
    notice = await _say(api, pump, USER, "a lighthouse at night")
    assert notice.startswith("🛠 The bot is under maintenance")
    assert _queued(sync_redis) == 0
    # A job that was already running finishes and is delivered during maintenance.
    job_id = finish_sticker_job(sync_redis, USER, USER)
    await delivered_sticker(api, USER, job_id)
    # Admins still get through.
    await admin.send_text("an admin test picture")
    await pump.idle()
    assert _queued(sync_redis, HIGH_QUEUE) == 1
    assert (await _say(api, pump, ADMIN_ID, "/maintenance off")).startswith("Maintenance mode is OFF")
    assert "maintenance" not in await _say(api, pump, USER, "a lighthouse at night")
    assert _queued(sync_redis) == 1


async def test_again_button_is_limited_like_a_typed_request(api, start_replicas, sync_redis) -> None:
    _, pump = await start_replicas(1, rate_per_minute=1, max_inflight=10)
    api.user(USER)
    job_id = finish_sticker_job(sync_redis, USER, USER)
    result = await delivered_sticker(api, USER, job_id)
    assert "Too many" not in await _say(api, pump, USER, "a typed request")
    before = len(api.messages_to(USER))
    query_id = await api.user(USER).press(result, button_text="🔄 Again")
    await pump.idle()
    await api.wait_for(lambda: len(api.messages_to(USER)) > before, EVENT_TIMEOUT_S)
    assert last_text(api, USER).startswith("⏳ Too many requests: 1 per minute.")
    assert api.callback_queries[query_id].answered
    assert _queued(sync_redis) == 1


async def test_a_refused_prompt_keeps_its_dialog_open(api, start_replicas, sync_redis) -> None:
    """A limit refuses the job, not the dialog: the user's next text is still this mode's prompt."""
    _, pump = await start_replicas(1, rate_per_minute=1, max_inflight=10)
    api.user(USER)
    assert "Too many" not in await _say(api, pump, USER, "a typed request")
    await _say(api, pump, USER, "/sticker")
    assert await_state(sync_redis, USER)
    assert (await _say(api, pump, USER, "a dog")).startswith("⏳ Too many requests: 1 per minute.")
    assert await_state(sync_redis, USER)
    assert _queued(sync_redis) == 1
