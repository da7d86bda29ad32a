"""Security: admin surface hidden from others, forged callbacks refused without side effects,
secrets never logged, webhook secret enforced, per-user limits across chats."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import aiohttp
import pytest

from bot.ui.i18n import I18n
from contract.queue import JobStatus
from devkit.botapi import LocalBotAPI
from devkit.botapi.models import SentMessage
from devkit.botapi.sim import SimUser
from devkit.redis_server import free_port
from tests.bot.conftest import make_settings, start_bot, stop_bot
from tests.reliability.conftest import (
    LOG_RECORDS,
    SECRETS,
    Rel,
    Tally,
    account,
    job_records,
    rel_harness,
    worker_log_text,
)

ADMIN_ID = 777_000_001
ADMIN_COMMANDS = ("/stats", "/queue", "/workers", "/ban 5", "/unban 5", "/limits", "/broadcast hi",
                  "/maintenance on")
ADMIN_CALLBACKS = ("adm:bc-send", "adm:bc-cancel", "adm:refresh-queue", "adm:refresh-workers")
WEBHOOK_SECRET = "webhook-Secret_value-99"
FLOOD_GROUPS = 6
PER_MINUTE = 3
I18N = I18n()


def _ids(value: Any) -> Any:
    """Message ids and dates differ between two otherwise identical answers."""
    if isinstance(value, dict):
        return {k: _ids(v) for k, v in value.items() if k not in ("message_id", "date", "reply_to_message_id",
                                                                    "callback_query_id")}
    if isinstance(value, list):
        return [_ids(v) for v in value]
    return value


MARKER_TEXT = I18N.get("en", "help-text").split("\n", 1)[0]
"""The first line of /help, which closes a measured action (see :func:`_calls_for`)."""
MARKER_TIMEOUT_S = 30.0


async def _calls_for(h: Rel, sender: SimUser, action: Any) -> list[tuple[str, Any]]:
    """The Bot API calls (except polling) the bot made in answer to one action of ``sender``.

    A chat's updates are handled one at a time and in order, so the action's calls all come before
    the answer to a /help the same user sends right after it: no waiting for the bot to go quiet."""
    start = len(h.api.calls)
    await action()
    await sender.send_text("/help")

    def marker() -> int | None:
        for index in range(start, len(h.api.calls)):
            call = h.api.calls[index]
            if (call.method == "sendMessage" and str(call.params.get("chat_id")) == str(sender.chat_id)
                    and MARKER_TEXT in str(call.params.get("text", ""))):
                return index
        return None

    await h.api.wait_for(lambda: marker() is not None, timeout=MARKER_TIMEOUT_S)
    end = marker()
    assert end is not None
    return [(c.method, _ids(c.params)) for c in h.api.calls[start:end] if c.method != "getUpdates"]


async def test_admin_commands_and_buttons_from_others_look_unknown(
        botapi: LocalBotAPI, clean_redis: str, tally: Tally) -> None:
    async with rel_harness(botapi, clean_redis, ADMIN_IDS=str(ADMIN_ID)) as h:
        user = h.user()
        keys_before = {k async for k in h.redis.scan_iter(match="kb:*")}
        unknown = await _calls_for(h, user, lambda: user.send_text("/frobnicate"))
        for command in ADMIN_COMMANDS:
            assert await _calls_for(h, user, lambda c=command: user.send_text(c)) == unknown, command
            tally.faults += 1
        before = h.count(user)
        await user.send_text("/start")
        await h.wait_text(user, "I draw pictures", after=before)
        await asyncio.sleep(1.0)
        target = h.bot_messages(user)[-1]

        async def press(data: str) -> tuple[Any, ...]:
            target.reply_markup = {"inline_keyboard": [[{"text": "b", "callback_data": data}]]}
            query: list[str] = []

            async def go() -> None:
                query.append(await user.press(target, callback_data=data))

            calls = await _calls_for(h, user, go)
            state = h.api.callback_queries[query[0]]
            return state.answered, state.answer_text, state.show_alert, calls

        stale = await press("zz:nothing")
        for data in ADMIN_CALLBACKS:
            assert await press(data) == stale, data
            tally.faults += 1
        keys_after = {k async for k in h.redis.scan_iter(match="kb:*")}
        new = {k.decode() for k in keys_after - keys_before}
        assert not [k for k in new if "admin" in k or "broadcast" in k or "maint" in k or "ban" in k], new
        # The comparison is not vacuous: the admin does get an answer to /stats.
        admin = h.api.user(ADMIN_ID)
        admin_answer = await _calls_for(h, admin, lambda: admin.send_text("/stats"))
        admin_unknown = await _calls_for(h, admin, lambda: admin.send_text("/frobnicate"))
        assert admin_answer and admin_answer != admin_unknown


async def test_forged_and_replayed_callbacks_are_refused_without_side_effects(
        live: Rel, tally: Tally) -> None:
    h = live
    alice, mallory = h.user(first_name="Alice"), h.user(first_name="Mallory")
    await alice.send_text("a quiet harbour at night")
    result = await h.wait_result(alice)
    job_id = result.inline_buttons[0]["callback_data"].split(":")[2]
    await mallory.send_text("/start")
    await h.wait_text(mallory, "I draw pictures")
    await asyncio.sleep(1.0)
    target = h.bot_messages(mallory)[-1]
    records_before = await job_records(h, [alice, mallory])
    alice_msgs = len(h.api.messages_to(alice.chat_id))
    not_yours = I18N.get("en", "not-yours")
    forged = [
        f"r:again:{job_id}:0", f"r:var:{job_id}:0", f"r:seed:{job_id}:0", f"r:file:{job_id}:0",
        f"r:pack:{job_id}:0", f"pe:{job_id}:0:1", f"j:cancel:{job_id}",
        f"pk:open:{alice.user_id}:1", f"pk:remove:{alice.user_id}:1", f"pk:rename:{alice.user_id}:1",
        f"pk:use:{alice.user_id}:1", f"pk:new:{alice.user_id}:-1",
        "r:again", "r:again:nojob:zz", "r:nonsense:x:0", "pk:open:notanumber:1", "adm:", "j:", ":::",
        "s:style:" + "x" * 50, "m:../../etc", "w:999", "w:-5", "\u202e\x00",
    ]
    refusals = (not_yours, I18N.get("en", "pack-not-yours"))
    for data in forged:
        target.reply_markup = {"inline_keyboard": [[{"text": "b", "callback_data": data}]]}
        query_id = await mallory.press(target, callback_data=data)
        tally.faults += 1
        if data.startswith("r:") and job_id in data:
            # A button of Alice's result: Mallory is told it is not hers.
            await h.api.wait_for(lambda: h.api.callback_queries[query_id].answered, timeout=15)  # noqa: B023
            state = h.api.callback_queries[query_id]
            assert state.answer_text in refusals, (data, state.answer_text)
    # Nothing Mallory pressed touched Alice's job, her chat, the queue or any sticker pack.
    await asyncio.sleep(2.0)
    assert await job_records(h, [alice, mallory]) == records_before
    assert len(h.api.messages_to(alice.chat_id)) == alice_msgs
    assert not h.api.sticker_sets
    acc = await account(h, [alice, mallory], tally)
    assert acc.accepted == 1


async def test_webhook_without_or_with_a_wrong_secret_is_rejected(
        botapi: LocalBotAPI, clean_redis: str, tally: Tally) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    settings = make_settings(botapi, clean_redis, BOT_MODE="webhook", WEBHOOK_URL=url, WEBHOOK_PATH="/hook",
                             WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_HOST="127.0.0.1", WEBHOOK_PORT=port)
    running = await start_bot(botapi, settings)
    try:
        await botapi.wait_for(lambda: botapi.webhook_url == url, timeout=15)
        user = botapi.user(880_000_123)
        update = {"update_id": 55_555, "message": {
            "message_id": 1, "date": int(time.time()), "chat": {"id": user.chat_id, "type": "private"},
            "from": {"id": user.user_id, "is_bot": False, "first_name": "Eve"}, "text": "/start"}}
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                            {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET[:-1]},
                            {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET.upper()}):
                async with session.post(url, json=update, headers=headers) as resp:
                    assert resp.status == 401, headers
                tally.faults += 1
            await asyncio.sleep(1.0)
            assert botapi.messages_to(user.chat_id) == []
            async with session.post(url, json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as resp:
                assert resp.status == 200
        await botapi.wait_for(lambda: len(botapi.messages_to(user.chat_id)) == 1, timeout=15)
    finally:
        await stop_bot(*running)
    assert not botapi.violations


async def test_per_user_limit_holds_when_flooding_from_many_groups(
        botapi: LocalBotAPI, clean_redis: str, tally: Tally) -> None:
    async with rel_harness(botapi, clean_redis, RATE_PER_MINUTE=PER_MINUTE, RATE_PER_DAY=100,
                           MAX_INFLIGHT=100) as h:
        user = h.user()
        groups = [h.api.group(-4_000_000 - i, f"flood {i}") for i in range(FLOOD_GROUPS)]
        for round_ in range(2):
            for group in groups:
                await user.send_text(f"/imagine@kandinsky_test_bot flood {round_} {group.chat_id}",
                                     in_chat=group)
        for i in range(3):
            await user.send_text(f"/imagine private flood {i}")
        sent = FLOOD_GROUPS * 2 + 3
        # Every request is answered: PER_MINUTE queued, the rest told about the limit.
        limit_text = I18N.get("en", "quota-per-minute", limit=PER_MINUTE, time="X", seconds=1).split(":")[0]

        def answered() -> int:
            chats = [user.chat_id] + [g.chat_id for g in groups]
            return sum(1 for c in chats for m in h.api.messages_to(c)
                       if m.from_bot and (limit_text in (m.text or "") or any(
                           "j:cancel:" in str(b.get("callback_data")) for v in [m, *m.edits]
                           for b in v.inline_buttons)))

        await h.api.wait_for(lambda: answered() >= sent, timeout=60)
        records = await job_records(h, [user])
        tally.faults += sent - PER_MINUTE
        assert len(records) == PER_MINUTE, f"{len(records)} jobs accepted from {sent} (limit {PER_MINUTE})"
        # Queued jobs are cancelled by the user, each answered once, and nothing more.
        before = h.count(user)
        await user.send_text("/cancel")
        await h.wait_text(user, "", after=before)
        acc = await _settle_any_chat(h, user, groups, tally)
        assert acc == PER_MINUTE


async def _settle_any_chat(h: Rel, user: SimUser, groups: list[Any], tally: Tally) -> int:
    """Jobs of one user in several chats: each ends with one result or one final text in its chat."""
    deadline = time.monotonic() + 120
    while True:
        records = await job_records(h, [user])
        done = [r for r in records.values() if r.get("status") in
                (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)]
        delivered = [j for j in records if await h.redis.exists(f"kb:delivered:{j}")]
        if len(done) == len(records) == len(delivered):
            break
        assert time.monotonic() < deadline, records
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)
    cancelled = I18N.get("en", "job-cancelled")
    answers = 0
    for job_id, rec in records.items():
        chat = int(rec["chat_id"])
        msgs: list[SentMessage] = [m for m in h.api.messages_to(chat) if m.from_bot and not m.deleted]
        results = [m for m in msgs
                   if any(f":{job_id}:" in str(b.get("callback_data")) for b in m.inline_buttons)]
        finals = [m for m in msgs if (m.text or "") == cancelled and any(
            f"j:cancel:{job_id}" == str(b.get("callback_data")) for v in m.edits for b in v.inline_buttons)]
        n = len(results) + len(finals)
        assert n == 1, (job_id, rec.get("status"), n)
        answers += n
    tally.accepted += len(records)
    tally.answered += answers
    return answers


def test_no_secret_in_any_log_line(log_dir: Any, tally: Tally) -> None:
    """Runs last in this module: every bot record of the run so far and every worker log file."""
    tally.scenarios += 0
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = []
    for record in LOG_RECORDS:
        try:
            lines.append(formatter.format(record))
        except Exception as exc:  # a record that cannot format is a bug of its own
            pytest.fail(f"log record of {record.name} does not format: {exc}")
    text = "\n".join(lines) + "\n" + worker_log_text(log_dir)
    assert len(lines) > 100, "too few records to mean anything"
    assert "rel-worker" in text
    for secret in SECRETS:
        found = [m.start() for m in re.finditer(re.escape(secret), text)]
        assert not found, f"a secret appears {len(found)} times in the logs: ...{text[found[0]-80:found[0]]}"
