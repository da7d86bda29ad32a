"""Admin commands from an admin, and the same from a non-admin (indistinguishable from unknown)."""

from __future__ import annotations

import json
import re
from typing import Any

import redis as redis_sync
from rq import Worker

from contract import keys
from contract.families import Family
from contract.loras import LoraStyle
from contract.queue import DEFAULT_QUEUE, HIGH_QUEUE
from contract.spec import JobSpec, Mode
from devkit.botapi import LocalBotAPI
from tests.ops.conftest import ADMIN_ID, EVENT_TIMEOUT_S, Pump, last_text
from worker.metrics import publish_worker_info, record_job

USER = 601
COMMANDS = (
    "/stats", "/queue", "/workers", "/ban 42", "/unban 42", "/limits", "/limits 42 1 2 3", "/broadcast hello",
    "/maintenance on", "/maintenance off", "/maintenance",
)


def _normalise(value: Any, ids: set[int]) -> Any:
    """A call's parameters with the message ids of the request itself blanked out."""
    if isinstance(value, dict):
        return {k: _normalise(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, ids) for v in value]
    if isinstance(value, (int, str)) and str(value).isdigit() and int(value) in ids:
        return "<id>"
    return value


async def _answer_to(api: LocalBotAPI, pump: Pump, user_id: int, text: str) -> list[tuple[str, Any]]:
    """Every Bot API call the bot made because of one message (getUpdates aside)."""
    await pump.idle()
    start = len(api.calls)
    msg_id = await api.user(user_id).send_text(text)
    await pump.idle()
    calls = [c for c in api.calls[start:] if c.method != "getUpdates"]
    return [(c.method, _normalise(c.params, {msg_id})) for c in calls]


async def test_admin_commands_answer_admins(api, start_replicas, sync_redis: redis_sync.Redis) -> None:
    replicas, pump = await start_replicas(1)
    admin = api.user(ADMIN_ID)
    api.user(USER)
    # Some history: finished jobs (as workers record them), a queued job, a live worker.
    for seconds, family in ((1.0, "kandinsky22"), (2.0, "kandinsky22"), (3.0, "kandinsky3"), (10.0, None)):
        record_job(sync_redis, "text2image", "done", seconds, family=family)  # None: an older worker
    record_job(sync_redis, "sticker", "failed", None, family="kandinsky3")
    await admin.send_text("/start")  # the admin is a user too
    await api.user(USER).send_text("/start")
    await pump.idle()
    spec = JobSpec(mode=Mode.TEXT2IMAGE, prompt="a fox", width=512, height=512, user_id=USER, chat_id=USER)
    await replicas[0].services.queue.submit(spec)
    worker = Worker([HIGH_QUEUE, DEFAULT_QUEUE], connection=sync_redis, name="gpu-host-1.77")
    worker.register_birth()
    worker.heartbeat()
    ink = LoraStyle(name="ink", title="Ink sketch", file="ink.safetensors", family=Family.SDXL)
    publish_worker_info(sync_redis, worker.name, "cuda:0", families=("kandinsky22", "kandinsky3"),
                        styles={Family.SDXL.value: [ink]}, refused=["broken.safetensors"])

    async def ask(text: str, expect: str) -> str:
        """Send a command; the bot's new answer, which must contain ``expect``."""
        before = len(api.messages_to(ADMIN_ID))
        await admin.send_text(text)
        await api.wait_for(lambda: len(api.messages_to(ADMIN_ID)) > before, EVENT_TIMEOUT_S)
        await pump.idle()
        answer = last_text(api, ADMIN_ID)
        assert expect in answer
        return answer

    stats = await ask("/stats", "Stats")
    assert "Users: 2 in total, 2 active today" in stats
    assert "Jobs: 5 today, 5 in total; failed 1 today, 1 in total" in stats
    assert "Queue depth: 1" in stats
    assert "text2image: 4 today, 4 total, failed 0/0, median 2.5 s, p95 10.0 s" in stats
    assert "sticker: 0 today, 0 total, failed 1/1" in stats
    assert "Kandinsky 2.2: 2 today, 2 total, failed 0/0" in stats  # the model families' own lines
    assert "Kandinsky 3.0: 1 today, 1 total, failed 1/1" in stats

    queue = await ask("/queue", "Queue")
    assert f"{DEFAULT_QUEUE} (Kandinsky 2.2): 1 waiting, 0 running" in queue
    assert f"{HIGH_QUEUE} (Kandinsky 2.2): 0 waiting" in queue
    assert "kb-kandinsky3-default (Kandinsky 3.0): 0 waiting, 0 running" in queue
    assert re.search(r"Oldest wait: \d+ s", queue)

    workers = await ask("/workers", "Workers (1)")
    assert "gpu-host-1.77 on " in workers and "(cuda:0; Kandinsky 2.2, Kandinsky 3.0)" in workers
    assert "0 done" in workers
    assert "↳ LoRA styles: ink; refused at start: broken.safetensors (why: the worker's log)" in workers
    worker.register_death()

    assert await ask("/ban 42", "banned") == "User 42 is banned."
    assert sync_redis.sismember(keys.BANNED, "42")
    assert await ask("/ban 42", "banned") == "User 42 was already banned."
    assert await ask(f"/ban {ADMIN_ID}", "Admins") == "Admins cannot be banned."
    assert await ask("/ban someone", "Usage") == "Usage: /ban <user id>"
    assert await ask("/unban 42", "unbanned") == "User 42 is unbanned."
    assert not sync_redis.sismember(keys.BANNED, "42")

    assert await ask("/limits", "Default") == "Default limits: 5/min, 100/day, 2 in flight."
    set_text = await ask("/limits 42 1 2 3", "User 42")
    assert set_text.startswith("User 42: 1/min, 2/day, 3 in flight (custom: yes, banned: no).")
    assert (await ask("/limits 42", "User 42")).startswith("User 42: 1/min, 2/day, 3 in flight")
    reset = await ask("/limits 42 reset", "User 42")
    assert reset.startswith("User 42: 5/min, 100/day, 2 in flight (custom: no")
    assert (await ask("/limits 42 -1 2 3", "Usage")).startswith("Usage: /limits")

    assert (await ask("/maintenance on", "Maintenance mode is ON")).startswith("Maintenance mode is ON")
    assert sync_redis.exists(keys.MAINTENANCE)
    assert await ask("/maintenance", "Maintenance mode is") == "Maintenance mode is on."
    assert (await ask("/maintenance off", "OFF")).startswith("Maintenance mode is OFF")
    assert not sync_redis.exists(keys.MAINTENANCE)
    assert await ask("/maintenance maybe", "Usage") == "Usage: /maintenance on|off"

    confirm = await ask("/broadcast Hello everyone", "Send this to every user?")
    assert confirm.endswith("Hello everyone")
    await admin.press(api.messages_to(ADMIN_ID)[-1], button_text="✖️ Cancel")
    await api.wait_for(lambda: last_text(api, ADMIN_ID) == "Broadcast cancelled.", EVENT_TIMEOUT_S)
    assert api.messages_to(USER)[-1].text != "Hello everyone"

    # Everything the admin did is in the action log, with who and when.
    log = [json.loads(raw) for raw in sync_redis.lrange(keys.ADMIN_LOG, 0, -1)]
    actions = [entry["action"] for entry in reversed(log)]
    for action in ("stats", "queue", "workers", "ban", "unban", "limits-set", "limits-reset", "maintenance",
                   "broadcast-draft", "button:bc-cancel"):
        assert action in actions
    assert all(entry["admin"] == ADMIN_ID and entry["ts"] > 0 for entry in log)
    assert api.violations == []


async def test_non_admin_gets_the_unknown_command_answer(api, start_replicas, sync_redis) -> None:
    _, pump = await start_replicas(1)
    api.user(USER)
    unknown = await _answer_to(api, pump, USER, "/frobnicate")
    for command in COMMANDS:
        assert await _answer_to(api, pump, USER, command) == unknown, command
    # ... and nothing happened.
    assert not sync_redis.exists(keys.BANNED) and not sync_redis.exists(keys.MAINTENANCE)
    assert not sync_redis.exists(keys.ADMIN_LOG)
    assert sync_redis.keys("kb:quota:42:*") == []
    # The same command from the admin does answer (so the comparison above is not vacuous).
    api.user(ADMIN_ID)
    admin_stats = await _answer_to(api, pump, ADMIN_ID, "/stats")
    assert admin_stats and admin_stats != await _answer_to(api, pump, ADMIN_ID, "/frobnicate")


async def test_non_admin_admin_button_is_like_a_stale_button(api, start_replicas, sync_redis) -> None:
    _, pump = await start_replicas(1)
    user = api.user(USER)
    await user.send_text("/start")
    await pump.idle()
    target = api.messages_to(USER)[-1]

    async def press(data: str) -> tuple[bool, str | None, bool, list[tuple[str, Any]]]:
        target.reply_markup = {"inline_keyboard": [[{"text": "b", "callback_data": data}]]}
        start = len(api.calls)
        query_id = await user.press(target, callback_data=data)
        await pump.idle()
        state = api.callback_queries[query_id]
        calls = [(c.method, {k: v for k, v in c.params.items() if k != "callback_query_id"})
                 for c in api.calls[start:] if c.method != "getUpdates"]
        return state.answered, state.answer_text, state.show_alert, calls

    stale = await press("zz:nothing")
    sync_redis.set("kb:broadcast:pending:601", "spam")
    for data in ("adm:bc-send", "adm:refresh-queue", "adm:refresh-workers", "adm:bc-cancel"):
        assert await press(data) == stale, data
    assert sync_redis.keys("kb:broadcast:*") == [b"kb:broadcast:pending:601"]
    assert not sync_redis.exists(keys.ADMIN_LOG)
