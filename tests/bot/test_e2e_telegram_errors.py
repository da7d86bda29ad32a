"""Telegram's error answers: 429 storms, 5xx, a user who blocked the bot, /cancel; the token never logged."""

from __future__ import annotations

import asyncio
import logging
import time

from contract import keys
from devkit.botapi.models import SentMessage
from tests.bot.conftest import TOKEN, Harness, press
from tests.bot.images import photo


def _all_log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in records)


async def test_429_storm_every_message_arrives(harness: Harness) -> None:
    h = harness
    user = h.user()
    h.api.rate_limit(2, per_seconds=1.0)  # Telegram's flood control, per chat
    h.api.inject("sendMessage", error_code=429, retry_after=1, times=2)
    h.api.inject("getUpdates", error_code=429, retry_after=1, times=1)
    started = time.monotonic()
    for _ in range(6):
        await user.send_text("/help")
    await h.api.wait_for(
        lambda: len([m for m in h.api.messages_to(user.chat_id) if "What I can do" in (m.text or "")]) == 6,
        timeout=60)
    assert time.monotonic() - started >= 2.0  # it did wait
    answered_429 = [c for c in h.api.calls if c.status == 429]
    assert len(answered_429) >= 3
    # The harness asserts no request came back before its retry_after ended (api.early_retries).


async def test_server_errors_are_retried(harness: Harness) -> None:
    user = harness.user()
    harness.api.inject("sendMessage", error_code=502, times=2)
    await user.send_text("/help")
    await harness.wait_text(user, "What I can do", timeout=30)
    assert len([c for c in harness.api.calls if c.status == 502]) == 2


async def test_cancel_command_and_buttons_for_queued_jobs(harness: Harness) -> None:
    h = harness
    user = h.user()
    # Leaving a dialog.
    await user.send_text("/depth")
    ask = await h.wait_text(user, "Send me a photo")
    await press(h, user, ask, "✖️ Cancel")
    await h.wait_text(user, "Cancelled. Send me a text")
    await user.send_photo(photo())  # no dialog now: the menu, not a job
    await h.wait_text(user, "What should I do with this photo?")
    # Two queued jobs (no worker here); /cancel removes both and each status says so.
    await user.send_text("first castle")
    first = await h.wait_text(user, "Your request")
    before = h.count(user)
    await user.send_text("second castle")
    second = await h.wait_text(user, "Your request", after=before)
    assert len(await h.queue.user_jobs(user.user_id)) == 2
    await user.send_text("/cancel")
    await h.wait_text(user, "Cancelled 2 jobs.")
    def told(status: SentMessage) -> bool:
        return "The request was cancelled" in (h.api.message(status.chat_id, status.message_id).text or "")

    await h.api.wait_for(lambda: told(first) and told(second), timeout=20)
    await user.send_text("/cancel")
    await h.wait_text(user, "There is nothing to cancel.")
    # The status button; a job that is already gone.
    before = h.count(user)
    await user.send_text("third castle")
    third = await h.wait_text(user, "in the queue", after=before)
    query_id = await press(h, user, third, "✖️ Cancel")
    assert "Removed from the queue" in (h.api.callback_queries[query_id].answer_text or "")
    await h.api.wait_for(lambda: "cancelled" in (h.api.message(third.chat_id, third.message_id).text or ""))
    # The job leaves the user's in-flight set as its cancelled event is delivered, just after that edit.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await h.queue.user_jobs(user.user_id):
        assert loop.time() < deadline, await h.queue.user_jobs(user.user_id)
        await asyncio.sleep(0.05)


async def test_blocked_user_during_cancellation(harness: Harness) -> None:
    h = harness
    user, job_id = await h.queued_by_new_user("a ship")
    h.api.block_bot(user.user_id)
    await h.queue.cancel(job_id, user.user_id)  # e.g. an admin's cancel: its event meets the block
    for _ in range(100):
        if await h.redis.exists(keys.delivered(job_id)) and await h.redis.exists(keys.blocked(user.user_id)):
            break
        await asyncio.sleep(0.1)
    # Marked (by Telegram's my_chat_member update or by the 403), and the event acked, not retried.
    assert await h.redis.exists(keys.blocked(user.user_id))
    assert await h.redis.exists(keys.delivered(job_id))
    assert (await h.redis.xpending(keys.EVENTS_STREAM, keys.EVENTS_GROUP))["pending"] == 0
    # Writing to the bot again lifts the mark.
    await user.send_text("/start")
    await h.wait_text(user, "Hi, ")
    assert not await h.redis.exists(keys.blocked(user.user_id))


async def test_token_never_in_logs(harness: Harness) -> None:
    h = harness
    user = h.user()
    h.api.inject("sendMessage", error_code=429, retry_after=1, times=1)
    h.api.inject("sendMessage", error_code=500, times=1)
    h.api.inject("sendMessage", error_code=400, description="Bad Request: chat not found", times=1)
    await user.send_text("/help")  # the 400 kills this answer: the error handler logs it, says sorry
    await h.wait_text(user, "Sorry, something went wrong", timeout=30)
    await user.send_text("/help")
    await h.wait_text(user, "What I can do", timeout=30)
    await user.send_document(b"junk", "x.png", "image/png")
    await h.wait_text(user, "What should I do with this photo?")
    h.api.inject("getUpdates", error_code=500, times=3)  # polling fails once: aiogram logs the error
    await h.api.wait_for(lambda: len([c for c in h.api.calls if c.status == 500]) >= 4, timeout=20)
    before = h.count(user)
    await user.send_text("/help")
    await h.wait_text(user, "What I can do", after=before, timeout=30)
    text = _all_log_text(h.log_records)
    assert "Failed to fetch updates" in text and "chat not found" in text and "429" in text
    secret = TOKEN.split(":", 1)[1]
    assert TOKEN not in text and secret not in text


async def test_blocking_marks_the_user_at_once_and_groups_get_no_unasked_replies(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/start")
    await h.wait_text(user, "Hi, ")
    h.api.block_bot(user.user_id)  # Telegram sends my_chat_member: member -> kicked

    async def marked() -> bool:
        return bool(await h.redis.exists(keys.blocked(user.user_id)))

    for _ in range(100):
        if await marked():
            break
        await asyncio.sleep(0.1)
    assert await marked()
    h.api.unblock_bot(user.user_id)
    for _ in range(100):
        if not await marked():
            break
        await asyncio.sleep(0.1)
    assert not await marked()

    # In a group, chatter is not a prompt; an explicit command is.
    group = h.api.group(-4_200_001, "friends")
    await user.send_text("nice weather today", in_chat=group)
    await user.send_text("/help", in_chat=group)
    def helped() -> bool:
        return any("What I can do" in (m.text or "") for m in h.api.messages_to(group.chat_id))

    await h.api.wait_for(helped, timeout=20)
    assert len(h.api.messages_to(group.chat_id)) == 1 and await h.jobs_of(user) == []


async def test_a_status_message_that_cannot_be_sent_does_not_fail_the_request(harness: Harness) -> None:
    h = harness
    user = h.user()
    # Telegram holds the chat longer than the send path waits for one call: the queue-position
    # message gives up, but the job is queued and no "something went wrong" follows.
    h.api.inject("sendMessage", error_code=429, retry_after=61, times=1, chat_id=user.chat_id)
    await user.send_text("a castle in the clouds")
    await h.api.wait_for(lambda: bool(h.api.calls_to("sendMessage", chat_id=user.chat_id)), timeout=20)
    for _ in range(50):
        if await h.jobs_of(user):
            break
        await asyncio.sleep(0.1)
    assert len(await h.jobs_of(user)) == 1
    await asyncio.sleep(0.5)
    assert h.api.messages_to(user.chat_id) == []
    assert len(h.api.calls_to("sendMessage", chat_id=user.chat_id)) == 1  # and nothing inside the window
    assert any("status message was not sent" in r.getMessage() for r in h.log_records)
