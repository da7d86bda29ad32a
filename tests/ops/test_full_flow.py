"""The whole path once, with a real worker process on the tiny bundle instead of a written result:
/sticker → RQ → worker (prior, decoder, rembg) → delivery → "add to my pack" → sticker set,
and the job shows up in /stats, the worker's /metrics and /workers device.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from devkit.botapi import LocalBotAPI, SentMessage
from devkit.redis_server import free_port
from tests.ops.conftest import ADMIN_ID, EVENT_TIMEOUT_S, last_text

USER = 1101
WORKER_TIMEOUT_S = 300.0
"""Import of torch/diffusers, engine load and one 512 px sticker on two shared CPU cores."""
HEALTH_POLL_S = 0.2
"""How often the test looks at the worker's endpoint while the worker starts."""


async def test_sticker_from_a_real_worker_into_a_pack(api: LocalBotAPI, start_replicas, redis_url: str,
                                                      tiny_bundle: Path) -> None:
    _, pump = await start_replicas(1)
    user = api.user(USER)
    await user.send_text("/sticker a small red fox")
    await pump.idle()
    assert "queue" in last_text(api, USER).lower() or "request" in last_text(api, USER).lower()

    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "KANDINSKY_MODEL_DIR": str(tiny_bundle),
           "KANDINSKY_DEVICE": "cpu", "KANDINSKY_DTYPE": "float32", "WORKER_NAME": "cpu-worker-1",
           "HEALTH_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    metrics_text = workers_text = ""

    def admin_text() -> str:
        return last_text(api, ADMIN_ID) if api.messages_to(ADMIN_ID) else ""

    try:
        # While the worker runs, its endpoint answers; read the metrics once the job is counted.
        async with aiohttp.ClientSession() as session:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WORKER_TIMEOUT_S
            while proc.returncode is None and loop.time() < deadline:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                        text = await response.text()
                        if 'kb_worker_jobs_total{mode="sticker",outcome="done"}' in text:
                            metrics_text = text
                            break
                await asyncio.sleep(HEALTH_POLL_S)
        # /workers shows the live worker with its device while it runs.
        if metrics_text:
            await api.user(ADMIN_ID).send_text("/workers")
            await api.wait_for(lambda: "Workers (1)" in admin_text(), EVENT_TIMEOUT_S)
            workers_text = last_text(api, ADMIN_ID)
    finally:
        if proc.returncode is None:
            proc.terminate()  # a redeploy: RQ finishes the current job and exits
        output, _ = await asyncio.wait_for(proc.communicate(), WORKER_TIMEOUT_S)
    assert metrics_text, output.decode(errors="replace")[-3000:]
    assert 'kb_worker_stage_seconds_count{stage="' in metrics_text
    assert "cpu-worker-1 on " in workers_text and "1 done" in workers_text
    held = "Kandinsky 2.2, Kandinsky 3.0, SDXL, Kandinsky 5.0 Video, Kandinsky 5.0 Image"
    assert f"(cpu; {held})" in workers_text  # the families it holds

    # Delivered with the "add to my pack" button; the pack is made from the worker's WEBP.
    def sticker_message() -> SentMessage | None:
        return next((m for m in api.messages_to(USER)
                     if any(b["text"] == "➕ Add to my pack" for b in m.inline_buttons)), None)

    await api.wait_for(lambda: sticker_message() is not None, EVENT_TIMEOUT_S)
    delivered = sticker_message()
    assert delivered is not None
    await user.press(delivered, button_text="➕ Add to my pack")
    await api.wait_for(lambda: last_text(api, USER) == "Pick an emoji for the sticker:", EVENT_TIMEOUT_S)
    picker = api.messages_to(USER)[-1]
    await user.press(picker, button_text="🔥")
    await api.wait_for(lambda: bool(api.message(USER, picker.message_id).edits), EVENT_TIMEOUT_S)
    assert "New pack" in (api.message(USER, picker.message_id).text or "")
    (sticker_set,) = api.sticker_sets.values()
    assert sticker_set.owner_user_id == USER and len(sticker_set.stickers) == 1

    admin = api.user(ADMIN_ID)
    await admin.send_text("/stats")
    await api.wait_for(lambda: "Stats" in admin_text(), EVENT_TIMEOUT_S)
    assert "sticker: 1 today, 1 total, failed 0/0" in last_text(api, ADMIN_ID)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker subprocess loads the tiny bundle from disk and must never try the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
